from wechat_avatar.cli import main

main()
