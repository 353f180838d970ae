#!/bin/sh
# gdnsd's extmon passes the endpoint's address (%%ITEM%%); its health-check URL
# (the model server, apart from the answer address) is chosen here. The same
# check as Arus's: HTTP 200 and a body naming the model.
case "$1" in
{{cases}}
  *) exit 1 ;;
esac
curl -sf -m 2 "$url" | grep -q llama-3-8b
