"""Writers of curated training data (SFT, DPO, Hugging Face datasets) with their lineage records."""
