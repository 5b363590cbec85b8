"""Entity spans (issue 25; the library part of a future `task: spans`).

- `tokens`: tokens with offsets, BIO tags to and from character spans;
- `read`: JSON Lines rows with span lists, Label Studio NER exports and CoNLL files as
  (documents, spans) frames;
- `checks`: span checks with quarantine reasons (offsets, recorded text, unknown types,
  overlaps);
- `agreement`: exact and overlap F1 per type, token-level kappa;
- `issues`: out-of-fold token probabilities and cleanlab's token-classification issues;
- `formats`: spaCy-style JSON Lines records and Hugging Face token columns.
"""
