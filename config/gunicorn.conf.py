"""gunicorn settings for `idp serve`; values given on the command line win."""

worker_class = "gthread"
threads = 4
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = "-"
# Never log query strings of the protocol endpoints' POST bodies; the request line is enough.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
forwarded_allow_ips = "127.0.0.1"
