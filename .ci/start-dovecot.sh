#!/usr/bin/env bash
# Start a throwaway Dovecot IMAP server on loopback and print HOST:PORT:USER:PASSWORD.
# Usage: .ci/start-dovecot.sh DIR PORT   (plaintext login, user maildesk / secret)
set -euo pipefail
dir=${1:-/tmp/maildesk-dovecot}
port=${2:-10143}
user=maildesk
password=secret

if ! command -v dovecot >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends dovecot-imapd >/dev/null
fi

mkdir -p "$dir/run" "$dir/state" "$dir/home"
dir=$(cd "$dir" && pwd)
if [ "$(id -u)" = 0 ]; then
  # Dovecot's own processes and the mailbox run unprivileged; they must reach $dir
  for name in dovecot dovenull; do
    id "$name" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$name"
  done
  internal=dovecot login=dovenull
  d=$dir
  while [ "$d" != / ]; do  # a mktemp -d parent is 0700: let them through, without read rights
    [ -n "$(find "$d" -maxdepth 0 -perm -o+x)" ] || { chmod o+x "$d"; echo "made $d searchable for $internal" >&2; }
    d=$(dirname "$d")
  done
else
  internal=$(id -un) login=$(id -un)
fi
mail_uid=$(id -u "$internal")
mail_gid=$(id -g "$internal")
chown "$mail_uid:$mail_gid" "$dir/home"

printf '%s:{PLAIN}%s:%s:%s::%s\n' "$user" "$password" "$mail_uid" "$mail_gid" "$dir/home/$user" > "$dir/passwd"
chmod 644 "$dir/passwd"

cat > "$dir/dovecot.conf" <<CONF
# a loopback-only test server: no TLS, plaintext passwords
base_dir = $dir/run
state_dir = $dir/state
instance_name = maildesk-test-$port
log_path = $dir/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
# tests log in with a wrong password on purpose: no delay, no growing penalty
auth_failure_delay = 0
default_internal_user = $internal
default_internal_group = $(id -gn "$internal")
default_login_user = $login
first_valid_uid = $mail_uid
last_valid_uid = $mail_uid
mail_location = maildir:~/Maildir
namespace inbox {
  inbox = yes
}
passdb {
  driver = passwd-file
  args = $dir/passwd
}
userdb {
  driver = passwd-file
  args = $dir/passwd
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $port
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
CONF

if [ -f "$dir/run/master.pid" ] && kill -0 "$(cat "$dir/run/master.pid")" 2>/dev/null; then
  kill "$(cat "$dir/run/master.pid")"
  for _ in $(seq 50); do kill -0 "$(cat "$dir/run/master.pid" 2>/dev/null)" 2>/dev/null || break; sleep 0.1; done
fi
dovecot -c "$dir/dovecot.conf"

for _ in $(seq 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "127.0.0.1:$port:$user:$password"
    exit 0
  fi
  sleep 0.1
done
echo "dovecot did not answer on 127.0.0.1:$port; see $dir/dovecot.log" >&2
exit 1
