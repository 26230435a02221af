"""`wechat-avatar serve`: the avatar over HTTP (OpenAI-compatible and native APIs)."""
