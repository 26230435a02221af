"""RLHF data: candidates sampled from the SFT model, judged, labeled by hand, kept in the ranked file."""
