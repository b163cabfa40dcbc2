"""The composition root: what a process is made of and how it runs (app.py: the bot, its web
server and background jobs; dispatcher.py: the notification dispatcher alone). The only place
that wires the front ends, the web server, the services and storage together."""
