"""Measuring biometric performance the ISO/IEC 19795-1 way (FMR, FNMR, EER, DET)."""
