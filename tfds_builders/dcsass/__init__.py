"""DCSASS (UCF-Crime clips with clip labels) dataset builder."""
