# passkey_redis by host name, resolved by nginx's resolver (never a
# blocking lookup): a name that resolves to the test Redis works; one that
# does not is 503 redis_unavailable with an error line naming it; the
# answer's address is used for the connection.  The test starts its own
# DNS server on 127.0.0.1 (UDP, A records only): redis.passkey.test is
# 127.0.0.1, anything else NXDOMAIN.

use t::Passkey;
use Test::Nginx::Socket 'no_plan';
require t::Dns;

repeat_each(1);
no_shuffle();

our $DnsPort = ($ENV{TEST_NGINX_SERVER_PORT} || 1984) + 150;
$ENV{TEST_NGINX_DNS_PORT} = $DnsPort;

start_dns($DnsPort, { 'redis.passkey.test' => [127, 0, 0, 1] });

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value('more_headers', 'Content-Type: application/json')
        unless defined $block->more_headers;
});

# the name went to the resolver, not to a blocking getaddrinfo()
add_response_body_check(sub {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;

    return if $dry_run || $block->name !~ /resolver finds/;

    Test::More::like(dns_queried(), qr/^redis\.passkey\.test$/m,
                     $block->name . " - nginx's resolver asked for it");
});

run_tests();

__DATA__

=== TEST 1: a host name nginx's resolver finds
--- config
    location = /passkey/bind {
        resolver       127.0.0.1:$TEST_NGINX_DNS_PORT valid=30s ipv6=off;
        passkey_redis  redis.passkey.test:$TEST_NGINX_REDIS_PORT;
        passkey_bind;
    }
--- request
POST /passkey/bind
{"username":"named-redis"}
--- error_code: 200
--- response_body_like: "job_id":"[0-9a-f]{16}"
--- redis_job
username: ^named-redis$



=== TEST 2: a host name that does not resolve: 503, and the log says so
--- config
    location = /passkey/bind {
        resolver          127.0.0.1:$TEST_NGINX_DNS_PORT ipv6=off;
        resolver_timeout  2s;
        passkey_redis     nowhere.passkey.test:$TEST_NGINX_REDIS_PORT;
        passkey_bind;
    }
--- request
POST /passkey/bind
{"username":"no-redis"}
--- error_code: 503
--- response_body_like: "code":"redis_unavailable"
--- error_log eval
qr/passkey redis "nowhere\.passkey\.test:\d+": nowhere\.passkey\.test could not be resolved \(3: Host not found\)/
