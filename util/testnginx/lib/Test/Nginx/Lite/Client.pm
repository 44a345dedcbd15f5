package Test::Nginx::Lite::Client;

# The client side of the Test::Nginx::Socket stand-in: turning a block's
# request sections into bytes, exchanging them with nginx over a plain TCP
# socket, and parsing the raw HTTP/1.x response.
#
# The request grammar and the response parsing follow openresty's
# Test::Nginx::Socket, so that the same sections produce the same bytes on
# the wire and the same parsed responses.

use strict;
use warnings;

use Exporter 'import';
use IO::Select ();
use IO::Socket::INET ();
use POSIX qw( EAGAIN WNOHANG );
use Time::HiRes qw( sleep );
use HTTP::Response ();
use Test::More ();

use Test::Nginx::Lite::Server qw( :settings bail_out expand_env_in_text );

our @EXPORT_OK = qw( get_req_from_block send_request parse_response );

# Counts "could not connect at all" failures; after three the whole run is
# abandoned, as in the real module.
our $TotalConnectingTimeouts = 0;

# --------------------------------------------------------------------------
# Building requests
# --------------------------------------------------------------------------

# Returns a list of requests; each request is a list of packets
# ({ value => bytes, delay_before => seconds }) written with separate
# syswrite() calls.  Each request goes on its own connection.
#
#   --- raw_request            sent as is (an array gives the packets)
#   --- pipelined_requests     all requests on one keep-alive connection
#   --- request                a string, or (eval) an array of requests,
#                              each a string or an array of packets
sub get_req_from_block ($) {
    my $block = shift;
    my $name = $block->name;

    my @reqs;

    if (defined $block->raw_request) {
        my $raw = $block->raw_request;
        if (ref $raw && ref $raw eq 'ARRAY') {
            push @reqs, [ map { { value => $_ } } @$raw ];
        } else {
            push @reqs, [ { value => $raw } ];
        }
        return \@reqs;
    }

    my $request;
    if (defined $block->request_eval) {
        Test::More::diag("$name - request_eval DEPRECATED. Use request "
                         . "eval instead.");
        $request = eval $block->request_eval;
        warn $@ if $@;

    } else {
        $request = $block->request;
        if (defined $request && !ref $request) {
            # leading blank space and "# comment" lines are not part of it
            1 while $request =~ s/^\s*\#[^\n]+\s+|^\s+//gs;
        }
    }

    my $more_headers = $block->more_headers || '';

    if ($block->pipelined_requests) {
        my $list = $block->pipelined_requests;
        if (!ref $list || ref $list ne 'ARRAY') {
            bail_out("$name - invalid entries in --- pipelined_requests");
        }

        my $bytes = '';
        for my $i (0 .. $#$list) {
            my $one = expand_env_in_text($list->[$i], $name, $RandPorts);
            my $conn = $i == $#$list ? 'close' : 'keep-alive';
            my ($hdrs, $chunked) = _more_headers_for($more_headers, $i,
                "--- more_headers lacks data for the $i pipelined request");
            my $packets = build_request_from_packets($name, $hdrs, $chunked,
                                                     $conn, [$one]);
            $bytes .= $packets->[0];
        }

        push @reqs, [ { value => $bytes } ];
        return \@reqs;
    }

    if (!ref $request) {
        my ($hdrs, $chunked) = _more_headers_for($more_headers, 0,
            "--- more_headers lacks data for the request");
        my $packets = build_request_from_packets($name, $hdrs, $chunked,
                                                 'close', [$request]);
        push @reqs, [ { value => $packets->[0] } ];
        return \@reqs;
    }

    if (ref $request ne 'ARRAY') {
        bail_out("$name - invalid ---request : MUST be string or array of "
                 . "requests");
    }

    for my $i (0 .. $#$request) {
        my $one = $request->[$i];
        my ($hdrs, $chunked) = _more_headers_for($more_headers, $i,
            "--- more_headers lacks data for the ${i}th request");

        if (!ref $one) {
            my $packets = build_request_from_packets($name, $hdrs, $chunked,
                                                     'close', [$one]);
            push @reqs, [ { value => $packets->[0] } ];
            next;
        }

        if (ref $one ne 'ARRAY') {
            bail_out("$name - Invalid syntax. $one should be a string or an "
                     . "array of packets.");
        }

        # a request given as packets: strings or { value, delay_before }
        my @values;
        for my $p (@$one) {
            if (!ref $p) {
                push @values, $p;
            } elsif (ref $p eq 'HASH') {
                push @values, $p->{value};
            } else {
                bail_out("$name - Invalid syntax. $p should be a string or "
                         . "hash with value.");
            }
        }

        my $out = build_request_from_packets($name, $hdrs, $chunked, 'close',
                                             \@values);
        my @packets;
        for my $k (0 .. $#$out) {
            my $orig = $one->[$k];
            push @packets, ref $orig
                ? { %$orig, value => $out->[$k] }
                : { value => $out->[$k] };
        }
        push @reqs, \@packets;
    }

    return \@reqs;
}

# --- more_headers may be one string for all requests or (eval) an array
# with one entry per request.
sub _more_headers_for {
    my ($more_headers, $i, $missing_msg) = @_;

    if (ref $more_headers eq 'ARRAY') {
        my $h = $more_headers->[$i];
        bail_out($missing_msg) if !defined $h;
        return parse_more_headers($h);
    }

    return parse_more_headers($more_headers);
}

# "Name: value" lines (lines starting with # are comments) to CRLF header
# lines; also tells whether the request body is sent chunked.
sub parse_more_headers ($) {
    my $in = shift;

    my $out = '';
    my $is_chunked;

    for my $line (split /\n+/, $in) {
        next if $line =~ /^\s*\#/;

        my ($key, $val) = split /:\s*/, $line, 2;
        $val //= '';

        if (lc($key) eq 'transfer-encoding' && $val eq 'chunked') {
            $is_chunked = 1;
        }

        $out .= "$key: $val\r\n";
    }

    return ($out, $is_chunked);
}

# Turns the short request form
#
#     METHOD [URI [VERSION]]
#     body...
#
# into a full HTTP request: a normalised request line (URI defaults to /,
# version to HTTP/1.1), Host and Connection headers unless more_headers has
# them, the more_headers, and Content-Length for a non-empty body (whose
# surrounding blank space is then dropped) unless the body is chunked or
# more_headers sets it.
#
# The request may be split into packets; the edits are applied so that
# each packet keeps its own part of the request, which is what lets tests
# split a body (or headers) across separate writes.
sub build_request_from_packets ($$$$$) {
    my ($name, $more_headers, $is_chunked, $conn_header, $packets) = @_;

    my $whole = join '', map { $_ // '' } @$packets;
    my $edits = _request_edits($name, $whole, $more_headers, $is_chunked,
                               $conn_header);

    return _apply_edits_to_packets($packets, $edits);
}

# The edits (original offset, length replaced, new text) that turn the
# short form into the full request.
sub _request_edits {
    my ($name, $req, $more_headers, $is_chunked, $conn_header) = @_;

    my ($first) = $req =~ /\A([^\n]*\n?)/;
    if ($first eq '') {
        bail_out("$name - Request line should be non-empty");
    }

    # leading space, METHOD, spaces, [URI, spaces], [VERSION, spaces],
    # trailing space including the line end
    my $ok = $first =~ /\A(\s*)(\S+)( *)(?:(\S+)( *))?(?:(\S+)( *))?(\s*)\z/;
    if (!$ok) {
        bail_out("$name - Request line is not valid. Should be 'meth [url "
                 . "[version]]' but got \"$first\".");
    }

    my ($lead, $meth, $sp1, $url, $sp2, $ver, $sp3, $tail)
        = ($1, $2, $3, $4, $5, $6, $7, $8);

    my @edits;
    my $pos = 0;

    my $add = sub {
        my ($len, $text) = @_;
        push @edits, [$pos, $len, $text];
        $pos += $len;
    };

    $add->(length $lead, '');
    $add->(length $meth, "$meth ");
    $add->(length $sp1, '');
    $add->(defined $url ? length $url : 0, (defined $url ? $url : '/') . ' ');
    $add->(defined $sp2 ? length $sp2 : 0, '');
    $add->(defined $ver ? length $ver : 0,
           (defined $ver ? $ver : 'HTTP/1.1') . "\r\n");
    $add->((defined $sp3 ? length $sp3 : 0) + length $tail, '');

    my $content = substr $req, $pos;
    my $new_content = $content;

    my $len_header = '';
    if (!$is_chunked && $content ne ''
        && $more_headers !~ /(?:^|\n)Content-Length:/)
    {
        $new_content =~ s/^\s+|\s+$//gs;
        $len_header = "Content-Length: " . length($new_content) . "\r\n";
    }

    $more_headers =~ s/(?<!\r)\n/\r\n/gs;

    my $headers = '';
    if ($more_headers !~ /(?:^|\n)Host:/msi) {
        $headers .= "Host: $ServerName\r\n";
    }
    if ($more_headers !~ /(?:^|\n)Connection/msi) {
        $headers .= "Connection: $conn_header\r\n";
    }
    $headers .= "$more_headers$len_header\r\n";

    $add->(0, $headers);
    $add->(length $content, $new_content);

    return \@edits;
}

# Applies edits given in offsets of the concatenated packets to the packets
# themselves.  Unchanged bytes stay in their packet.  Replaced bytes that
# span packets are refilled packet by packet with as many new bytes as each
# packet lost, the last one taking the rest (as the real module does); an
# insertion at a packet boundary goes to the end of the earlier packet.
sub _apply_edits_to_packets {
    my ($packets, $edits) = @_;

    my @start;
    my $total = 0;
    for my $p (@$packets) {
        push @start, $total;
        $total += length $p;
    }

    my @out = ('') x @$packets;

    # index of the packet holding the byte at offset $off
    my $packet_at = sub {
        my $off = shift;
        my $k = 0;
        $k++ while $k < $#start && $start[$k + 1] <= $off;
        return $k;
    };

    # copies original bytes [from, to) into their packets
    my $copy = sub {
        my ($from, $to) = @_;
        while ($from < $to) {
            my $k = $packet_at->($from);
            my $end = $k < $#start ? $start[$k + 1] : $total;
            $end = $to if $end > $to;
            $out[$k] .= substr $packets->[$k], $from - $start[$k],
                               $end - $from;
            $from = $end;
        }
    };

    my $done = 0;
    for my $e (@$edits) {
        my ($pos, $len, $text) = @$e;

        $copy->($done, $pos);

        if ($len == 0) {
            $out[$pos > 0 ? $packet_at->($pos - 1) : 0] .= $text;

        } else {
            my $from = $pos;
            my $to = $pos + $len;
            while ($from < $to) {
                my $k = $packet_at->($from);
                my $end = $k < $#start ? $start[$k + 1] : $total;
                $end = $to if $end > $to;
                my $take = $end < $to ? $end - $from : length $text;
                $out[$k] .= substr $text, 0, $take, '';
                $from = $end;
            }
        }

        $done = $pos + $len;
    }

    $copy->($done, $total);

    return \@out;
}

# --------------------------------------------------------------------------
# Talking to nginx
# --------------------------------------------------------------------------

# Sends one request (a list of packets) on a new connection and reads until
# nginx closes it.  The timeout applies to each wait for socket activity,
# not to the whole exchange.  On timeout the socket is closed and the test
# fails, unless the block has --- abort.  Returns the raw response bytes
# and whether this was a HEAD request.
sub send_request ($$$$;$) {
    my ($req, $middle_delay, $timeout, $block, $tries) = @_;

    my $name = $block->name;
    my @packets = @$req;

    my $whole = join '', map { $_->{value} } @packets;
    my $head_req = $whole =~ /^\s*HEAD\s+/ ? 1 : 0;

    my $server_addr = $block->server_addr_for_client // $ServerAddr;

    my $sock = IO::Socket::INET->new(
        PeerAddr => $server_addr,
        PeerPort => $ServerPortForClient,
        Proto    => 'tcp',
        Blocking => 0,
        Timeout  => $timeout,
    );

    if (!defined $sock) {
        return _retry_connect($req, $middle_delay, $timeout, $block,
                              $tries || 1, $server_addr);
    }

    my $resp = '';
    my $write_buf = (shift @packets)->{value};
    my $write_off = 0;
    my $writing = 1;

    while (1) {
        my $rsel = IO::Select->new($sock);
        my $wsel = $writing ? IO::Select->new($sock) : undef;
        my $esel = IO::Select->new($sock);

        my ($readable, $writable, $errored)
            = IO::Select->select($rsel, $wsel, $esel, $timeout);

        if (!$readable && !$writable && !$errored) {
            close $sock;
            if (!defined $block->abort) {
                Test::More->builder->no_ending(1);
                Test::More::fail("ERROR: client socket timed out - $name\n");
            } else {
                sleep 0.005;
            }
            last;
        }

        if ($errored && @$errored) {
            warn "exception occurs on the socket: $!\n";
            close $sock;
            last;
        }

        if ($readable && @$readable) {
            my $open = _read_available($sock, \$resp, $name);
            if (!$open) {
                close $sock;
                last;
            }
        }

        if ($writing && $writable && @$writable) {
            my $st = _write_available($sock, \$write_buf, \$write_off,
                                      \@packets, $middle_delay, \$resp);
            if (!defined $st) {
                close $sock;
                last;
            }

            if ($st eq 'done') {
                $writing = 0;
                my $shutdown = $block->shutdown;
                if (defined $shutdown) {
                    $shutdown = 1 if $shutdown =~ /^$/s;
                    shutdown($sock, $shutdown);
                }
            }
        }
    }

    return ($resp, $head_req);
}

# nginx may not be listening yet: retry with a growing pause (capped at
# 1 s), about 50 times in all; give up early if the nginx we started in
# the foreground has died.
sub _retry_connect {
    my ($req, $middle_delay, $timeout, $block, $tries, $server_addr) = @_;

    my $name = $block->name;
    my $err = $!;
    my $total_tries = $TotalConnectingTimeouts ? 20 : 50;

    if ($tries <= $total_tries) {
        my $wait = ($TestNginxSleep + $TestNginxSleep * $tries) * $tries / 2;
        $wait = 1 if $wait >= 1;

        if (defined $ChildPid && waitpid($ChildPid, WNOHANG) == -1) {
            warn "WARNING: Child process $ChildPid is already gone.\n";
            warn `tail -n20 $ErrLogFile`;
            Test::More->builder->no_ending(1);
            Test::More::fail("$name - Can't connect to $server_addr:"
                             . "$ServerPortForClient: $err (aborted)\n");
            return;
        }

        if ($wait >= 0.6) {
            warn "$name - Can't connect to $server_addr:"
                 . "$ServerPortForClient: $err\n";
            warn "\tRetry connecting after $wait sec\n"
                if $tries + 1 <= $total_tries;
        }

        sleep $wait;
        return send_request($req, $middle_delay, $timeout, $block,
                            $tries + 1);
    }

    my $msg = "$name - Can't connect to $server_addr:$ServerPortForClient: "
              . "$err (aborted)\n";
    if (++$TotalConnectingTimeouts < 3) {
        Test::More->builder->no_ending(1);
        Test::More::fail($msg);
    } else {
        bail_out($msg);
    }

    return;
}

# Reads everything available now.  Returns false once the peer has closed
# the connection (or on a read error).
sub _read_available {
    my ($sock, $resp, $name) = @_;

    while (1) {
        my $buf;
        my $n = sysread($sock, $buf, 1024);

        if (!defined $n) {
            return 1 if $! == EAGAIN;
            warn "WARNING: $name - HTTP response read failure: $!";
            return 0;
        }

        return 0 if $n == 0;

        $$resp .= $buf;
    }
}

# Writes as much as the socket takes.  Between packets it sleeps for the
# packet's delay_before (or --- raw_request_middle_delay).  Returns 'more'
# while data is left, 'done' when everything is written, undef on error.
sub _write_available {
    my ($sock, $buf, $off, $packets, $middle_delay, $resp) = @_;

    while (1) {
        my $rest = length($$buf) - $$off;

        if ($rest > 0) {
            my $n = syswrite($sock, $$buf, $rest, $$off);

            if (!defined $n) {
                return 'more' if $! == EAGAIN;
                my $msg = "write failed: $!";
                warn "$msg\n";
                $$resp = $msg if !$$resp;
                return undef;
            }

            $$off += $n;
            next;
        }

        my $next = shift @$packets;
        return 'done' if !defined $next;

        $$buf = $next->{value};
        $$off = 0;

        my $delay = defined $next->{delay_before} ? $next->{delay_before}
                                                  : $middle_delay;
        sleep $delay if $delay;
    }
}

# --------------------------------------------------------------------------
# Parsing responses
# --------------------------------------------------------------------------

# Parses one HTTP/1.x response from the front of $raw_resp.  Returns the
# HTTP::Response (body de-chunked or cut at Content-Length), the raw header
# block (status line included, last CRLF excluded) and any bytes left after
# this response (the next pipelined response, or garbage).  A malformed
# chunked body is a test failure, and then nothing is returned.
sub parse_response ($$$) {
    my ($name, $raw_resp, $head_req) = @_;

    my $raw_headers = '';
    if ($raw_resp =~ /(.*?\r\n)\r\n/s) {
        $raw_headers = $1;
    }

    my $res = HTTP::Response->parse($raw_resp);

    my $code = $res->code;
    if ($code && $code !~ /^\d+$/) {
        undef $code;
        $res->code(undef);
    }

    if ($code && ($code == 304 || $code == 101)) {
        return ($res, $raw_headers);
    }

    my $enc = $res->header('Transfer-Encoding');
    my $len = $res->header('Content-Length');
    my @trailers = $res->header('Trailer');

    my $left;

    if (defined $enc && $enc eq 'chunked') {
        my $raw = $res->content // '';
        my ($body, $rest, $err) = _dechunk($raw, \@trailers);
        if (defined $err) {
            Test::More->builder->no_ending(1);
            Test::More::fail("$name - $err");
            return;
        }
        $left = $rest;
        $res->content($body);

    } elsif (defined $len && $len ne '' && $len >= 0) {
        my $raw = $res->content;
        if (length $raw < $len) {
            if (!$head_req) {
                warn "WARNING: $name - response body truncated: $len "
                     . "expected, but got ", length $raw, "\n";
            }

        } elsif (length $raw > $len) {
            $left = substr $raw, $len;
            $res->content(substr $raw, 0, $len);
        }
    }

    return ($res, $raw_headers, $left);
}

# Decodes a chunked body.  Returns (body, bytes after the last chunk) or
# (undef, undef, error message).
sub _dechunk {
    my ($raw, $trailers) = @_;

    my $body = '';
    pos($raw) = 0;

    while (1) {
        if (!@$trailers && $raw =~ /\G0[ \t]*\r\n\r\n/gc) {
            return ($body, _rest_after_pos($raw, pos $raw));
        }

        if (@$trailers && $raw =~ /\G0[ \t]*\r\n/gc) {
            for my $t (@$trailers) {
                if ($raw !~ /\G\Q$t\E: [^\n]*\r\n/gc) {
                    return (undef, undef, "invalid trailer data received "
                                          . "(expected $t).");
                }
            }
            if ($raw !~ /\G\r\n/gc) {
                return (undef, undef,
                        "invalid chunked data received (expected CRLF).");
            }
            return ($body, _rest_after_pos($raw, pos $raw));
        }

        if ($raw =~ /\G[ \t]*([A-Fa-f0-9]+)[ \t]*\r\n/gc) {
            my $size = hex $1;
            my $at = pos $raw;

            if (length($raw) - $at < $size) {
                return (undef, undef, "invalid chunked data received "
                        . "(not enought octets for the data section)");
            }

            $body .= substr $raw, $at, $size;
            pos($raw) = $at + $size;

            if ($raw !~ /\G\r\n/gc) {
                return (undef, undef,
                        "invalid chunked data received (expected CRLF).");
            }
            next;
        }

        if ($raw =~ /\G(.+)/gcs) {
            return (undef, undef, "invalid chunked body received: $1");
        }

        return (undef, undef, "no last chunk found - $raw");
    }
}

# What follows offset $at, or undef when nothing does.
sub _rest_after_pos {
    my ($s, $at) = @_;
    return $at < length $s ? substr($s, $at) : undef;
}

1;
