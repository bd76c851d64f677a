"""quantification"""
