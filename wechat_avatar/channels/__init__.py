"""WeChat's official channels: Official Account, WeCom app, ClawBot.

Each channel reaches the model only through `serve`'s native avatar API over HTTP (core.Avatar)."""
