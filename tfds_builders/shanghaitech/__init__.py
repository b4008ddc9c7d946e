"""ShanghaiTech Campus dataset builder."""
