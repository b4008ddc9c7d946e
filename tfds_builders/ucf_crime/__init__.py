"""UCF-Crime dataset builder."""
