"""wechat-avatar: clone yourself from your own WeChat history."""

__version__ = "0.1.0"
