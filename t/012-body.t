# The bind's request body: chunked like Content-Length, kept in memory
# (never a temporary file, whatever client_body_buffer_size says), refused
# as soon as it passes passkey_max_body_size, and clients that send
# broken or unfinished bodies.

use t::Passkey;
use Test::Nginx::Socket 'no_plan';

repeat_each(1);
no_shuffle();

# a worker that crashes is reported by the master ("exited on signal")
master_on();

# the text of a chunked body: $body in chunks of $size bytes, without the
# last chunk
sub chunked {
    my ($body, $size) = @_;
    my $out = '';

    while (length $body) {
        my $chunk = substr $body, 0, $size, '';
        $out .= sprintf "%x\r\n%s\r\n", length $chunk, $chunk;
    }

    return $out;
}

# a bind body of exactly $len bytes: the username and a member to pad it
sub padded {
    my ($user, $len) = @_;
    my $body = "{\"username\":\"$user\",\"pad\":\"";

    return $body . ('x' x ($len - length($body) - 2)) . '"}';
}

# a request in $n packets, $delay seconds apart: $head, then $data
sub packets {
    my ($head, $data, $n, $delay) = @_;
    my $size = int((length($data) + $n - 1) / $n);
    my @packets = ($head . substr($data, 0, $size));

    for (my $i = $size; $i < length $data; $i += $size) {
        push @packets, { value => substr($data, $i, $size),
                         delay_before => $delay };
    }

    return \@packets;
}

add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->more_headers) {
        $block->set_value('more_headers', "Content-Type: application/json\n"
                                          . "Transfer-Encoding: chunked");
    }

    if (!defined $block->config || $block->config !~ /passkey_bind/) {
        $block->set_value('config', ($block->config // '') . <<'CONF');
    location = /passkey/bind {
        passkey_bind;
    }
CONF
    }
});

run_tests();

__DATA__

=== TEST 1: a chunked body is read like one with a Content-Length
--- request eval
"POST /passkey/bind\n" . main::chunked('{"username":"carol"}', 7)
. "0\r\n\r\n"
--- error_code: 200
--- response_body_like: "job_id":"[0-9a-f]{16}"
--- redis_job
username: ^carol$
--- no_error_log
a client request body is buffered to a temporary file



=== TEST 2: chunks arriving over time, their framing larger than client_body_buffer_size: no temporary file
--- config
    location = /passkey/bind {
        client_body_buffer_size 1k;
        passkey_bind;
    }
--- request eval
[main::packets("POST /passkey/bind\n",
               main::chunked(main::padded('dave', 800), 3) . "0\r\n\r\n",
               6, 0.05)]
--- error_code: 200
--- response_body_like: "job_id":"[0-9a-f]{16}"
--- redis_job
username: ^dave$
--- no_error_log
a client request body is buffered to a temporary file



=== TEST 3: a Content-Length body larger than client_body_buffer_size, in parts: no temporary file
--- config
    location = /passkey/bind {
        client_body_buffer_size 1k;
        passkey_max_body_size   8k;
        passkey_bind;
    }
--- more_headers
Content-Type: application/json
--- request eval
[main::packets("POST /passkey/bind\n", main::padded('erin', 6000), 4, 0.05)]
--- error_code: 200
--- response_body_like: "job_id":"[0-9a-f]{16}"
--- redis_job
username: ^erin$
--- no_error_log
a client request body is buffered to a temporary file



=== TEST 4: the same body read by nginx's own buffering goes to a file (what TEST 2 and 3 would log)
--- config
    location = /buffered {
        client_body_buffer_size 1k;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/ok;
    }

    location = /ok {
        return 204;
    }
--- more_headers
Content-Type: application/json
--- request eval
[main::packets("POST /buffered\n", main::padded('erin', 6000), 4, 0.05)]
--- error_code: 204
--- error_log
a client request body is buffered to a temporary file



=== TEST 5: a chunked body at the limit is accepted
--- config
    location = /passkey/bind {
        passkey_max_body_size 64;
        passkey_bind;
    }
--- request eval
"POST /passkey/bind\n" . main::chunked(main::padded('frank', 64), 10)
. "0\r\n\r\n"
--- error_code: 200
--- response_body_like: "job_id"



=== TEST 5a: a whole chunked body over the limit, sent at once
--- config
    location = /passkey/bind {
        passkey_max_body_size 64;
        passkey_bind;
    }
--- request eval
"POST /passkey/bind\n" . main::chunked(main::padded('frank', 65), 10)
. "0\r\n\r\n"
--- error_code: 413
--- response_body_like: "code":"body_too_large"
--- error_log
passkey: request body of 65 bytes is larger than passkey_max_body_size 64



=== TEST 6: a chunked body over the limit is refused as soon as it passes it, not at its end
client_body_timeout is 60 s and the body never ends: only an answer
before its end comes within the client's 3 s.
--- config
    location = /passkey/bind {
        client_body_timeout   60s;
        passkey_max_body_size 64;
        passkey_bind;
    }
--- request eval
"POST /passkey/bind\n" . main::chunked(main::padded('grace', 100), 100)
--- timeout: 3
--- error_code: 413
--- response_headers
Connection: close
Content-Type: application/problem+json
--- response_body_like: ^\{"type":"urn:ngx-passkey:problem:body_too_large","title":"Content Too Large","status":413,"code":"body_too_large"
--- error_log
passkey: request body is larger than passkey_max_body_size 64 (100 bytes so far)



=== TEST 7: small chunks over time: the total counts, across chunks and reads
--- config
    location = /passkey/bind {
        client_body_timeout   60s;
        passkey_max_body_size 64;
        passkey_bind;
    }
--- request eval
[main::packets("POST /passkey/bind\n",
               main::chunked(main::padded('heidi', 200), 10), 10, 0.1)]
--- timeout: 3
--- error_code: 413
--- response_body_like: "code":"body_too_large"
--- error_log eval
qr/\[info\] .*passkey: request body is larger than passkey_max_body_size 64 \((?:6[5-9]|[7-9]\d|1\d\d|200) bytes so far\)/
--- no_error_log
[alert]
[crit]



=== TEST 8: a Content-Length over the limit is refused before the body is read
Reading it would wait for 100000 bytes and find the client gone: 400.
--- config
    location = /passkey/bind {
        passkey_max_body_size 64;
        passkey_bind;
    }
--- raw_request eval
"POST /passkey/bind HTTP/1.1\r
Host: localhost\r
Content-Type: application/json\r
Content-Length: 100000\r
\r
{\"username\":\"ivan\""
--- shutdown
--- error_code: 413
--- response_body_like: "code":"body_too_large"
--- error_log
passkey: request body of 100000 bytes is larger than passkey_max_body_size 64
--- no_error_log
client prematurely closed connection



=== TEST 9: a chunked body cut short: the client leaves mid-chunk
--- request eval
[main::packets("POST /passkey/bind\n",
               "40\r\n" . '{"username":"judy","pad":"xx', 2, 0.1)]
--- shutdown
--- ignore_response
--- error_log eval
qr/\[info\] .*client prematurely closed connection/
--- no_error_log
[alert]
[crit]
exited on signal



=== TEST 10: bad chunk framing after the first chunk: nginx's 400
--- request eval
[["POST /passkey/bind\n" . main::chunked('{"username":', 12),
  { value => "zz\r\n\"kim\"}\r\n0\r\n\r\n", delay_before => 0.1 }]]
--- error_code: 400
--- error_log
client sent invalid chunked body
--- no_error_log
[alert]
[crit]



=== TEST 11: an empty chunked body is no body
--- request eval
"POST /passkey/bind\n0\r\n\r\n"
--- error_code: 400
--- response_body_like: "code":"missing_username"



=== TEST 12: a chunked bind, then the next request on the same connection
--- more_headers eval
["Content-Type: application/json\nTransfer-Encoding: chunked",
 ""]
--- pipelined_requests eval
["POST /passkey/bind\n" . main::chunked('{"username":"leo"}', 5)
 . "0\r\n\r\n",
 "GET /fake/stats"]
--- error_code eval
[200, 200]
--- response_body_like eval
[qr/"job_id"/, qr/"create_identity":1,"create_job":1,/]



=== TEST 13: a body another module read first is taken from memory
--- config
    location = /passkey/bind {
        mirror /mirror;
        passkey_bind;
    }

    location = /mirror {
        internal;
        return 204;
    }
--- more_headers
Content-Type: application/json
--- request
POST /passkey/bind
{"username":"mallory"}
--- error_code: 200
--- response_body_like: "job_id"
--- redis_job
username: ^mallory$



=== TEST 14: one it had nginx write to a temporary file is refused, not read
--- config
    location = /passkey/bind {
        client_body_buffer_size 1k;
        passkey_max_body_size   8k;
        mirror                  /mirror;
        passkey_bind;
    }

    location = /mirror {
        internal;
        return 204;
    }
--- more_headers
Content-Type: application/json
--- request eval
[main::packets("POST /passkey/bind\n", main::padded('niaj', 6000), 4, 0.05)]
--- error_code: 413
--- response_body_like: "code":"body_too_large"
--- error_log
a client request body is buffered to a temporary file
passkey: request body was read earlier into a temporary file, which is not read at request time



=== TEST 15: an early refusal does not ask for the body it will not read
--- config
    location = /passkey/bind {
        # the client sends no body: nginx waits for the body it discards
        # this long, then closes
        lingering_timeout 200ms;
        passkey_bind;
    }
--- raw_request eval
"POST /passkey/bind HTTP/1.1\r
Host: localhost\r
Content-Type: text/plain\r
Content-Length: 20\r
Expect: 100-continue\r
Connection: close\r
\r
"
--- error_code: 415
--- raw_response_headers_unlike: 100 Continue
--- response_body_like: "code":"unsupported_media_type"
