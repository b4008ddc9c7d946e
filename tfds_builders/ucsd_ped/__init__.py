"""UCSD Pedestrian (Ped1, Ped2) dataset builder."""
