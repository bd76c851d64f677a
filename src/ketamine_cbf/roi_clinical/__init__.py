"""roi_clinical"""
