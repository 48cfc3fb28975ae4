#!/usr/bin/env bash
# Remakes the service captures in sample-captures/ (content-{ntp,dhcp,mdns,llmnr,netbios,ssdp,
# imap,pop3,starttls}.pcap) from Debian's own servers and clients talking between two network
# namespaces joined by a veth pair, recorded with tcpdump on the client side:
#   chronyd (server) <- chronyd -Q (client)                   NTP
#   dnsmasq (DHCP server) <- busybox udhcpc (host name, vendor class)   DHCP
#   avahi-daemon (server) <- avahi-daemon + avahi-resolve       mDNS
#   llmnrd <- llmnr-query                                       LLMNR
#   samba's nmbd <- nmblookup (unicast and broadcast)           NetBIOS name service
#   miniupnpd <- upnpc                                          SSDP
#   dovecot <- curl imap:// and pop3://, plain and --ssl-reqd   IMAP, POP3, STARTTLS/STLS
#
# Run as root: `sudo scripts/make-service-captures.sh [OUTDIR]` (default: sample-captures/).
# Network layout as in make-content-captures.sh (client 192.0.2.1, server 192.0.2.2, fixed MACs,
# static neighbours, offloads off, IPv6 off), plus a multicast route on both sides and the
# broadcast address 192.0.2.255. The expected values are in sample-captures/README.md.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$(realpath -m "${1:-$HERE/../sample-captures}")
CLI=sv-cli
SRV=sv-srv
CLI4=192.0.2.1
SRV4=192.0.2.2
WORK=$(mktemp -d /tmp/service-captures.XXXXXX)
chmod 755 "$WORK"

[[ $(id -u) -eq 0 ]] || { echo "run as root" >&2; exit 2; }

install_tools() {
    local missing=()
    command -v tcpdump >/dev/null || missing+=(tcpdump)
    command -v openssl >/dev/null || missing+=(openssl)
    command -v curl >/dev/null || missing+=(curl)
    command -v dnsmasq >/dev/null || missing+=(dnsmasq-base)
    command -v ethtool >/dev/null || missing+=(ethtool)
    command -v ip >/dev/null || missing+=(iproute2)
    command -v chronyd >/dev/null || missing+=(chrony)
    command -v udhcpc >/dev/null || missing+=(udhcpc)
    command -v avahi-daemon >/dev/null || missing+=(avahi-daemon)
    command -v avahi-resolve >/dev/null || missing+=(avahi-utils)
    command -v dbus-daemon >/dev/null || missing+=(dbus)
    command -v llmnrd >/dev/null || missing+=(llmnrd)
    command -v nmbd >/dev/null || missing+=(samba)
    command -v nmblookup >/dev/null || missing+=(samba-common-bin)
    command -v miniupnpd >/dev/null || missing+=(miniupnpd-nftables)
    command -v upnpc >/dev/null || missing+=(miniupnpc)
    command -v dovecot >/dev/null || missing+=(dovecot-imapd dovecot-pop3d)
    if ((${#missing[@]})); then
        apt-get update -qq
        # Only the programs are wanted: no daemon is started at install time.
        local blocker=/usr/sbin/policy-rc.d own_blocker=no
        if [[ ! -e $blocker ]]; then
            printf '#!/bin/sh\nexit 101\n' >"$blocker"
            chmod 755 "$blocker"
            own_blocker=yes
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
        [[ $own_blocker == yes ]] && rm -f "$blocker"
    fi
}

cleanup() {
    local pid
    for pid in $(jobs -p); do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del "$CLI" 2>/dev/null || true
    ip netns del "$SRV" 2>/dev/null || true
    rm -rf "$WORK"
}

in_cli() { ip netns exec "$CLI" "$@"; }
in_srv() { ip netns exec "$SRV" "$@"; }
# For daemons started with `&`: exec, so that `$!` is the daemon itself and stop_bg ends it.
bg_cli() { exec ip netns exec "$CLI" "$@"; }
bg_srv() { exec ip netns exec "$SRV" "$@"; }

setup_network() {
    ip netns add "$CLI"
    ip netns add "$SRV"
    local ns
    for ns in "$CLI" "$SRV"; do
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
            net.ipv6.conf.default.disable_ipv6=1
        ip -n "$ns" link set lo up
    done
    ip link add name cli0 address 02:00:00:00:00:01 netns "$CLI" type veth \
        peer name srv0 address 02:00:00:00:00:02 netns "$SRV"
    ip -n "$CLI" addr add "$CLI4/24" brd 192.0.2.255 dev cli0
    ip -n "$SRV" addr add "$SRV4/24" brd 192.0.2.255 dev srv0
    ip -n "$CLI" neigh add "$SRV4" lladdr 02:00:00:00:00:02 dev cli0 nud permanent
    ip -n "$SRV" neigh add "$CLI4" lladdr 02:00:00:00:00:01 dev srv0 nud permanent
    in_cli ethtool -K cli0 tso off gso off gro off tx off rx off >/dev/null
    in_srv ethtool -K srv0 tso off gso off gro off tx off rx off >/dev/null
    ip -n "$CLI" link set cli0 up
    ip -n "$SRV" link set srv0 up
    # Multicast (mDNS, LLMNR, SSDP) leaves through the veth.
    ip -n "$CLI" route add 224.0.0.0/4 dev cli0
    ip -n "$SRV" route add 224.0.0.0/4 dev srv0
    # miniupnpd wants an external interface: a second veth pair inside the server namespace.
    ip link add name ext0 netns "$SRV" type veth peer name ext1 netns "$SRV"
    ip -n "$SRV" addr add 198.51.100.2/24 dev ext0
    ip -n "$SRV" link set ext0 up
    ip -n "$SRV" link set ext1 up
    sleep 1
}

start_capture() { # start_capture FILE
    # IGMP membership reports are left out: the kernel sends them when a daemon joins a group.
    ip netns exec "$CLI" tcpdump -s 0 -U --immediate-mode -i cli0 -w "$OUT/$1" \
        'ip and not igmp' 2>"$WORK/capture.log" &
    CAPTURE_PID=$!
    for _ in $(seq 50); do
        grep -q "listening" "$WORK/capture.log" 2>/dev/null && break
        sleep 0.1
    done
    sleep 0.5
}

stop_capture() {
    sleep 1
    kill -TERM "$CAPTURE_PID"
    wait "$CAPTURE_PID" || true
    chmod 644 "$OUT/$1"
    echo "  $1: $(wc -c <"$OUT/$1") bytes"
}

wait_listening() { # wait_listening PORT [udp]
    local flag=-ltn
    [[ ${2:-} == udp ]] && flag=-lun
    for _ in $(seq 100); do
        in_srv ss "$flag" | grep -q ":$1 " && return 0
        sleep 0.1
    done
    echo "nothing listens on $1" >&2
    return 1
}

stop_bg() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

capture_ntp() {
    echo "content-ntp.pcap: chronyd -Q (client port 53301) -> chronyd server (local stratum 8)"
    cat >"$WORK/chrony-server.conf" <<EOF
pidfile $WORK/chrony-server.pid
driftfile $WORK/chrony-server.drift
cmdport 0
bindaddress $SRV4
allow 192.0.2.0/24
local stratum 8
EOF
    cat >"$WORK/chrony-client.conf" <<EOF
pidfile $WORK/chrony-client.pid
cmdport 0
acquisitionport 53301
server $SRV4 iburst maxsamples 3
EOF
    # -x: never touch the clock.
    bg_srv chronyd -x -d -u root -f "$WORK/chrony-server.conf" >/dev/null 2>&1 &
    local server=$!
    wait_listening 123 udp
    start_capture content-ntp.pcap
    # -Q: measure the offset and print it, without setting the clock.
    in_cli timeout 30 chronyd -Q -u root -f "$WORK/chrony-client.conf" >/dev/null 2>&1
    stop_capture content-ntp.pcap
    stop_bg "$server"
}

capture_dhcp() {
    echo "content-dhcp.pcap: udhcpc -x hostname:sessionscope-client -V sessionscope-vendor/1.0 -> dnsmasq"
    bg_srv dnsmasq --keep-in-foreground --port=0 --no-resolv --no-hosts --bind-interfaces \
        --interface=srv0 --except-interface=lo --no-ping \
        --dhcp-range=192.0.2.100,192.0.2.150,255.255.255.0,1h \
        --dhcp-host=02:00:00:00:00:01,192.0.2.100 --dhcp-leasefile="$WORK/leases" \
        --pid-file="$WORK/dnsmasq.pid" --user=root >/dev/null 2>&1 &
    local server=$!
    wait_listening 67 udp
    start_capture content-dhcp.pcap
    # -s /bin/true: take the lease but leave the interface as it is.
    in_cli timeout 20 udhcpc -i cli0 -f -q -n -t 3 -x hostname:sessionscope-client \
        -V sessionscope-vendor/1.0 -s /bin/true >/dev/null 2>&1
    stop_capture content-dhcp.pcap
    stop_bg "$server"
}

avahi_conf() { # avahi_conf HOSTNAME IFACE DBUS(yes|no)
    cat <<EOF
[server]
host-name=$1
domain-name=local
use-ipv4=yes
use-ipv6=no
allow-interfaces=$2
enable-dbus=$3
[publish]
publish-hinfo=no
publish-workstation=no
EOF
}

capture_mdns() {
    echo "content-mdns.pcap: avahi-daemon sessionscope-srv.local; avahi-daemon + avahi-resolve -n sessionscope-srv.local"
    avahi_conf sessionscope-srv srv0 no >"$WORK/avahi-server.conf"
    avahi_conf sessionscope-cli cli0 yes >"$WORK/avahi-client.conf"
    mkdir -p /run/avahi-daemon "$WORK/dbus"
    # Each daemon gets a private /run/avahi-daemon (its pid file) in its own mount namespace;
    # the client's talks to avahi-resolve over a private system bus.
    start_capture content-mdns.pcap
    bg_srv unshare -m sh -c "mount -t tmpfs tmpfs /run/avahi-daemon &&
        exec avahi-daemon --no-chroot --no-rlimits -f $WORK/avahi-server.conf" \
        >/dev/null 2>&1 &
    local server=$!
    # Let the server finish probing and announcing, so the client has nothing cached.
    sleep 5
    local bus="unix:path=$WORK/dbus/socket"
    bg_cli dbus-daemon --config-file=/usr/share/dbus-1/system.conf --address="$bus" \
        --nofork --nopidfile >/dev/null 2>&1 &
    local dbus=$!
    sleep 0.5
    bg_cli env DBUS_SYSTEM_BUS_ADDRESS="$bus" unshare -m sh -c \
        "mount -t tmpfs tmpfs /run/avahi-daemon &&
        exec avahi-daemon --no-chroot --no-rlimits -f $WORK/avahi-client.conf" \
        >/dev/null 2>&1 &
    local client=$!
    sleep 3
    in_cli env DBUS_SYSTEM_BUS_ADDRESS="$bus" timeout 10 avahi-resolve -4 \
        -n sessionscope-srv.local >/dev/null
    # Stopped inside the capture: their goodbye packets (TTL 0) belong to this capture.
    stop_bg "$client"
    stop_bg "$server"
    stop_bg "$dbus"
    stop_capture content-mdns.pcap
}

capture_llmnr() {
    echo "content-llmnr.pcap: llmnr-query -T A -d 4660 sessionscope-srv -> llmnrd -H sessionscope-srv"
    bg_srv llmnrd -H sessionscope-srv -i srv0 >/dev/null 2>&1 &
    local server=$!
    wait_listening 5355 udp
    start_capture content-llmnr.pcap
    in_cli llmnr-query -I cli0 -T A -d 4660 sessionscope-srv >/dev/null
    stop_capture content-llmnr.pcap
    stop_bg "$server"
}

capture_netbios() {
    echo "content-netbios.pcap: nmbd (SSCOPE-SRV, workgroup SSCOPETEST) <- nmblookup -U, nmblookup -B"
    mkdir -p "$WORK/smb/server" "$WORK/smb/client"
    cat >"$WORK/smb/server.conf" <<EOF
[global]
   netbios name = SSCOPE-SRV
   workgroup = SSCOPETEST
   interfaces = $SRV4/24
   bind interfaces only = yes
   local master = no
   domain master = no
   preferred master = no
   lock directory = $WORK/smb/server
   state directory = $WORK/smb/server
   cache directory = $WORK/smb/server
   pid directory = $WORK/smb/server
   private dir = $WORK/smb/server
   ncalrpc dir = $WORK/smb/server/ncalrpc
   log file = $WORK/smb/server/log
EOF
    cat >"$WORK/smb/client.conf" <<EOF
[global]
   interfaces = $CLI4/24
   bind interfaces only = yes
   lock directory = $WORK/smb/client
   state directory = $WORK/smb/client
   cache directory = $WORK/smb/client
   private dir = $WORK/smb/client
EOF
    start_capture content-netbios.pcap
    bg_srv nmbd -F --debug-stdout -s "$WORK/smb/server.conf" >/dev/null 2>&1 &
    local server=$!
    wait_listening 137 udp
    # nmbd registers its names by broadcast (three tries, 2 s apart) before it answers.
    sleep 5
    in_cli nmblookup -s "$WORK/smb/client.conf" -U "$SRV4" SSCOPE-SRV >/dev/null
    in_cli nmblookup -s "$WORK/smb/client.conf" -B 192.0.2.255 SSCOPE-SRV >/dev/null
    stop_capture content-netbios.pcap
    stop_bg "$server"
}

capture_ssdp() {
    echo "content-ssdp.pcap: miniupnpd (IGD, port 5000) <- upnpc -l"
    cat >"$WORK/miniupnpd.conf" <<EOF
ext_ifname=ext0
listening_ip=srv0
port=5000
enable_natpmp=no
enable_upnp=yes
secure_mode=no
notify_interval=60
uuid=3a5c6f1e-0000-4000-8000-000000000001
friendly_name=sessionscope-igd
allow 1024-65535 192.0.2.0/24 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
EOF
    start_capture content-ssdp.pcap
    bg_srv miniupnpd -d -4 -f "$WORK/miniupnpd.conf" -P "$WORK/miniupnpd.pid" \
        >/dev/null 2>&1 &
    local server=$!
    wait_listening 5000
    sleep 1
    in_cli timeout 15 upnpc -m cli0 -l >/dev/null 2>&1 || true
    stop_capture content-ssdp.pcap
    stop_bg "$server"
}

setup_dovecot() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
        -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -subj /CN=mail.example.test \
        -addext subjectAltName=DNS:mail.example.test 2>/dev/null
    chmod 644 "$WORK/key.pem" "$WORK/cert.pem"
    mkdir -p "$WORK/dovecot/base" "$WORK/mail/user"
    chown -R nobody: "$WORK/mail/user"
    printf 'user:{PLAIN}secret:%s:%s::%s\n' "$(id -u nobody)" "$(id -g nobody)" \
        "$WORK/mail/user" >"$WORK/dovecot/users"
    cat >"$WORK/dovecot/dovecot.conf" <<EOF
base_dir = $WORK/dovecot/base
listen = $SRV4
protocols = imap pop3
ssl = yes
ssl_cert = <$WORK/cert.pem
ssl_key = <$WORK/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
login_greeting = sessionscope test mail server ready.
mail_location = maildir:~/Maildir
log_path = $WORK/dovecot/log
passdb {
  driver = passwd-file
  args = $WORK/dovecot/users
}
userdb {
  driver = passwd-file
  args = $WORK/dovecot/users
}
service imap-login {
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  inet_listener pop3s {
    port = 0
  }
}
EOF
    chmod -R a+rX "$WORK/dovecot"
}

capture_mail() {
    echo "content-imap.pcap, content-pop3.pcap, content-starttls.pcap: curl -> dovecot"
    setup_dovecot
    bg_srv dovecot -F -c "$WORK/dovecot/dovecot.conf" >/dev/null 2>&1 &
    local server=$!
    wait_listening 143
    wait_listening 110
    local curl=(curl -sS -o /dev/null -u user:secret --resolve "mail.example.test:143:$SRV4"
        --resolve "mail.example.test:110:$SRV4")
    start_capture content-imap.pcap
    in_cli "${curl[@]}" --local-port 41501 imap://mail.example.test/
    stop_capture content-imap.pcap
    start_capture content-pop3.pcap
    in_cli "${curl[@]}" --local-port 41502 pop3://mail.example.test/
    stop_capture content-pop3.pcap
    # --ssl-reqd: curl sends STARTTLS (IMAP) or STLS (POP3) and goes on in TLS; -k because the
    # certificate is self-signed.
    start_capture content-starttls.pcap
    in_cli "${curl[@]}" --local-port 41503 --ssl-reqd -k imap://mail.example.test/
    in_cli "${curl[@]}" --local-port 41504 --ssl-reqd -k pop3://mail.example.test/
    stop_capture content-starttls.pcap
    stop_bg "$server"
}

main() {
    install_tools
    trap cleanup EXIT
    ip netns del "$CLI" 2>/dev/null || true
    ip netns del "$SRV" 2>/dev/null || true
    mkdir -p "$OUT"
    setup_network
    capture_ntp
    capture_dhcp
    capture_mdns
    capture_llmnr
    capture_netbios
    capture_ssdp
    capture_mail
}

main
