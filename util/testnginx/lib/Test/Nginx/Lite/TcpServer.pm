package Test::Nginx::Lite::TcpServer;

# The one-shot fake TCP server of Test::Nginx::Socket (--- tcp_listen and
# friends), with the real module's behaviour: for each repetition of a
# block a child process listens on the given port (or *.sock path),
# accepts ONE connection, reads the request, optionally waits, sends the
# reply and closes.  What it read is then compared with --- tcp_query /
# --- tcp_query_len.
#
#   --- tcp_listen: PORT | /path/x.sock     ($TEST_NGINX_* expanded)
#   --- tcp_reply                           string, or (eval) an array of
#                                           strings sent one by one, or a
#                                           sub called with the request
#   --- tcp_query                           expected request bytes
#   --- tcp_query_len                       expected request length
#   --- tcp_reply_delay: 100ms              pause before replying
#   --- tcp_shutdown: 0|1|2                 shutdown() the accepted socket
#   --- tcp_shutdown_delay: 0.1             ... after this pause
#   --- tcp_no_close                        never close (keep it hanging)
#   --- tcp_query_auto_timeout[: 0.1]       read until quiet this long
#
# Without tcp_query/tcp_query_len the server reads once (one recv) before
# replying; with them it reads until that many bytes arrived.

use strict;
use warnings;

use Exporter 'import';
use File::Temp ();
use POSIX ();
use IO::Select ();
use IO::Socket::INET ();
use IO::Socket::UNIX ();
use Socket qw( SOCK_STREAM );
use Time::HiRes qw( sleep );
use Test::More ();

use Test::Nginx::Lite::Server qw( :settings bail_out expand_env_in_text
                                  parse_time kill_process );

our @EXPORT_OK = qw( start_tcp_server check_tcp_server_results
                     stop_tcp_server );

# Starts the server for one repetition of the block, if it has
# --- tcp_listen.  Returns a handle for the two functions below, or undef.
sub start_tcp_server ($$) {
    my ($block, $rand_ports) = @_;

    return undef unless defined $block->tcp_listen;

    my $name = $block->name;
    my $target = expand_env_in_text($block->tcp_listen, $name, $rand_ports);

    my $reply = $block->tcp_reply;
    if (!defined $reply && !defined $block->tcp_shutdown) {
        bail_out("$name - no --- tcp_reply specified but --- tcp_listen is "
                 . "specified");
    }

    my $req_len = $block->tcp_query_len;
    my $query_file;
    if (defined $block->tcp_query || defined $req_len) {
        $req_len //= length $block->tcp_query;
        (undef, $query_file) = File::Temp::tempfile('tn-tcp-query-XXXXXX',
                                                    TMPDIR => 1,
                                                    OPEN => 0);
    }

    my $sock = _listen_on($name, $target);

    my $pid = fork();
    if (!defined $pid) {
        bail_out("$name - fork() failed: $!");
    }

    if ($pid == 0) {
        Test::More->builder->no_ending(1);
        $Test::Nginx::Lite::Server::InSubprocess = 1;
        _serve_one_connection($block, $sock, $reply, $req_len, $query_file);
        POSIX::_exit(0);
    }

    $Test::Nginx::Lite::Server::TcpServerPid = $pid;

    return { pid => $pid, sock => $sock, query_file => $query_file,
             target => $target };
}

# The listening socket; a port still held by a previous test is retried
# for up to 30 s.
sub _listen_on {
    my ($name, $target) = @_;

    my $err;
    for (1 .. 30) {
        my $sock;

        if ($target =~ /^\d+$/) {
            $sock = IO::Socket::INET->new(
                LocalHost => '127.0.0.1',
                LocalPort => $target,
                Proto     => 'tcp',
                Reuse     => 1,
                Listen    => 5,
                Timeout   => $Timeout,
            );

        } elsif ($target =~ m{\S+\.sock$}) {
            if (-e $target) {
                unlink $target or die "cannot remove $target: $!";
            }
            $sock = IO::Socket::UNIX->new(
                Local   => $target,
                Type    => SOCK_STREAM,
                Listen  => 5,
                Timeout => $Timeout,
            );

        } else {
            bail_out("$name - bad tcp_listen target: $target");
        }

        return $sock if $sock;

        $err = $!;
        last unless $err =~ /address already in use/i;

        warn "WARNING: failed to create the tcp listening socket: $err\n";
        sleep 1;
    }

    bail_out("$name - failed to create the tcp listening socket: $err");
}

# Child process: one connection, then exit.
sub _serve_one_connection {
    my ($block, $sock, $reply, $req_len, $query_file) = @_;

    my $name = $block->name;
    local $| = 1;

    my $client;
    until ($client = $sock->accept()) {
        warn "WARNING: $name - TCP server: failed to accept: $!\n";
        sleep $TestNginxSleep;
    }

    my ($no_read, $no_write);
    if (defined(my $how = $block->tcp_shutdown)) {
        if (my $delay = $block->tcp_shutdown_delay) {
            sleep $delay;
        }
        $client->shutdown($how);
        if ($how == 0 || $how == 2) {
            $no_read = 1;
        } else {
            $no_write = 1;
        }
    }

    my $buf = '';

    unless ($no_read) {
        my $auto = defined $block->tcp_query_auto_timeout;
        my $quiet = 0.1;
        if ($auto) {
            $client->blocking(0);
            my $t = $block->tcp_query_auto_timeout;
            $quiet = $t + 0 if $t ne '';
        }
        my $select = IO::Select->new($client);

        while (1) {
            last if $auto && !$select->can_read($quiet);

            my $chunk;
            my $ok = $client->recv($chunk, 4096);
            die "failed to receive: $!\n" if !defined $ok;

            # (the real module loops forever when the peer closes early;
            # we stop reading instead)
            my $eof = $chunk eq '';

            $buf .= $chunk;
            _save_query($query_file, $buf) if $query_file;

            last if $eof;
            last if !$auto && (!$req_len || length($buf) >= $req_len);
        }
    }

    if (my $delay = parse_time($block->tcp_reply_delay)) {
        sleep $delay;
    }

    if (!$no_write && defined $reply) {
        if (ref $reply eq 'CODE') {
            $reply = $reply->($buf);
        }

        if (ref $reply) {
            bail_out('bad --- tcp_reply value') if ref $reply ne 'ARRAY';
            for my $r (@$reply) {
                defined $client->send($r)
                    or warn "WARNING: tcp server failed to send reply: $!\n";
            }

        } else {
            defined $client->send($reply)
                or warn "WARNING: tcp server failed to send reply: $!\n";
        }
    }

    if (defined $block->tcp_no_close) {
        sleep 1 while 1;
    }

    $client->close();
    $sock->close();
}

# Written as soon as data arrives (atomically, by rename), so that the
# parent sees what was received even if the server is killed later.
sub _save_query {
    my ($file, $data) = @_;

    my $tmp = "$file.tmp";
    open my $out, '>', $tmp or die "cannot open $tmp for writing: $!\n";
    binmode $out;
    print $out $data;
    close $out;
    rename $tmp, $file or die "cannot rename $tmp to $file: $!\n";
}

# --- tcp_query (is_str: string or qr//) and --- tcp_query_len subtests.
sub check_tcp_server_results ($$) {
    my ($block, $h) = @_;

    return unless $h;

    my $name = $block->name;

    my $buf = '';
    if ($h->{query_file} && open my $in, '<', $h->{query_file}) {
        binmode $in;
        $buf = do { local $/; <$in> };
        close $in;
    }

    if (defined $block->tcp_query) {
        Test::Nginx::Socket::is_str($buf, $block->tcp_query,
                                    "$name - tcp_query ok");
    }

    if (defined $block->tcp_query_len) {
        Test::More::is(length($buf), $block->tcp_query_len,
                       "$name - TCP query length ok");
    }
}

sub stop_tcp_server ($$) {
    my ($name, $h) = @_;

    return unless $h;

    kill_process($h->{pid}, 1, $name);
    undef $Test::Nginx::Lite::Server::TcpServerPid;

    $h->{sock}->close();

    if ($h->{query_file}) {
        unlink $h->{query_file};
    }
}

1;
