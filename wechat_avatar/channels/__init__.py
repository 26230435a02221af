"""WeChat's official channels: Official Account, WeCom app, WeChat Customer Service, ClawBot.

Each channel reaches the model only through `serve`'s native avatar API over HTTP (core.Avatar)."""
