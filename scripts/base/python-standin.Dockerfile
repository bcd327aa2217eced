# A local stand-in for python:3.11.6-slim-bookworm when no registry is reachable:
# Debian 12's Python 3.11 with pip, venv and adduser, as the official image offers them.
FROM grader/debian:bookworm-minbase
ENV LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-pip python3-venv python-is-python3 ca-certificates adduser \
 && rm -rf /var/lib/apt/lists/*
# This network intercepts TLS: containers must trust the host's roots to reach the package index.
COPY host-ca.crt /etc/ssl/certs/ca-certificates.crt
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
CMD ["python3"]
