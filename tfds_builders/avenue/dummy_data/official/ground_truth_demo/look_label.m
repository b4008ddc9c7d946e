load('testing_label_mask/1_label.mat'); imshow(volLabel{1});
