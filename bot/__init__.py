"""The Telegram front end: settings, app factory, middlewares, keyboards, texts, web server."""
