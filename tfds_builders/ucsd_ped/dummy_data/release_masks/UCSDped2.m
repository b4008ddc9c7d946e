TestVideoFile = {};
TestVideoFile{end+1}.gt_frame = [1:2, 4:5];
TestVideoFile{end+1}.gt_frame = [3:4];
TestVideoFile{end+1}.gt_frame = [2:4];
