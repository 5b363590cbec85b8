"""Label issues: out-of-fold models, embeddings, cleanlab."""
