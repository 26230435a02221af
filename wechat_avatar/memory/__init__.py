"""Memory of your own history: your past replies, with what they answered, searchable by content.

    memory build   chat.db -> WORKSPACE/memory/index.db (exchanges.py cuts, index.py stores)
    recall         a friend's new message -> the few past exchanges worth showing (recall.py)

SQLite FTS5 over jieba-segmented words (words.py) rather than bm25s: it is in the standard
library's sqlite3, it adds and deletes rows in place (an incremental build re-indexes only the
chats a new ingest touched; bm25s re-indexes the whole corpus), it lives on disk instead of in
memory, and one SQL query filters by time and friend while it ranks.
"""
