"""sattn inside other frameworks' models. `sattn.integrations.transformers`: Hugging Face
transformers' `attn_implementation="sattn"` (docs/transformers.md)."""
