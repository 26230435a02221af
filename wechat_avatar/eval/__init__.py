"""`wechat-avatar eval`: how much a model replies like the person, on the held-out split.

metrics.py (pure text metrics) · privacy.py (PII and canary probe) · perplexity.py (loss on the real
replies) · run.py (the runs, metrics.json) · report.py + report.html.j2 (the HTML report).
"""
