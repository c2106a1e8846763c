"""Vertex AI's own API, where it is not Gemini's or Anthropic's: text embeddings by `:predict`."""
