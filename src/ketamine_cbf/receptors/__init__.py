"""receptors"""
