#!/bin/sh
# sane test image, busybox + dropbear: take this container's host key (OpenSSH format,
# converted for dropbear) and the client's public key from /sane-seed, then run dropbear
# in the foreground, logging to stderr. SSH_LISTEN / SSH_PORT choose the address.
set -eu
mkdir -p /root/.ssh /etc/dropbear
chmod 0700 /root /root/.ssh
cp /sane-seed/authorized_keys /root/.ssh/authorized_keys
chmod 0600 /root/.ssh/authorized_keys
dropbearconvert openssh dropbear /sane-seed/host_key /etc/dropbear/host_key >/dev/null 2>&1
exec dropbear -F -E -s -r /etc/dropbear/host_key -p "${SSH_LISTEN:+$SSH_LISTEN:}${SSH_PORT:-22}"
