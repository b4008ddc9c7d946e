TestVideoFile = {};
TestVideoFile{end+1}.gt_frame = [2:3];
TestVideoFile{end+1}.gt_frame = [1:1,3:3];
