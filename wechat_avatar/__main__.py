from wechat_avatar.cli import main

if __name__ == "__main__":  # guarded: ingest's spawned render workers import this module
    main()
