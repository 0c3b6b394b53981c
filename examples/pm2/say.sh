#!/bin/sh
# One line on each stream, then stay up.
echo "out ${PM2_INSTANCE_ID:-0}"
echo "err ${PM2_INSTANCE_ID:-0}" >&2
exec sleep 300
