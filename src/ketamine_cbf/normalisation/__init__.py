"""normalisation"""
