"""Agreement: coefficients, annotator quality, consensus."""
