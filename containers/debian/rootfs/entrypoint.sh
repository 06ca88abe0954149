#!/bin/sh
# sane test image, Debian + OpenSSH: take this container's host key and the client's
# public key from /sane-seed (a read-only mount made by sane.testing.containers),
# then run sshd in the foreground, logging to stderr (the container's log).
# SSH_LISTEN / SSH_PORT choose the address (for a container on the host's network).
set -eu
install -d -m 0700 /root/.ssh
install -m 0600 /sane-seed/authorized_keys /root/.ssh/authorized_keys
install -m 0600 /sane-seed/host_key /etc/ssh/ssh_host_ed25519_key
install -d -m 0755 /run/sshd
exec /usr/sbin/sshd -D -e -o "ListenAddress=${SSH_LISTEN:-0.0.0.0}:${SSH_PORT:-22}"
