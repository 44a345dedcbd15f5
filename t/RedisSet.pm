# Helpers of the files that start Redis deployments of their own
# (t/047-redis-sentinel.t, t/049-redis-cluster.t), loaded into the test
# file's package after "use t::Passkey" and "use Test::Nginx::Socket":
# redis-cli, servers started in a temporary directory and stopped at the
# end, waiting for a condition, binds as a named user, and binds one
# after another while something happens to the servers.

package main;

use strict;
use warnings;
use File::Temp qw(tempdir);
use HTTP::Tiny;
use POSIX ();
use Time::HiRes qw(sleep time);

our $Dir = tempdir('passkey-redis-set.XXXXXX', TMPDIR => 1, CLEANUP => 1);
our @Pids;

# redis-cli's output, quiet while a server is not up yet
sub cli {
    my ($port, @args) = @_;

    open my $fh, '-|', 'sh', '-c', 'exec redis-cli "$@" 2>/dev/null', '--',
         '-p', $port, @args or die $!;
    my $out = do { local $/; <$fh> } // '';
    close $fh;
    chomp $out;

    return $out;
}

# a server in the background, its output in $Dir/$log
sub spawn {
    my ($log, @cmd) = @_;

    my $pid = fork;
    die "fork: $!" unless defined $pid;

    if ($pid == 0) {
        open STDOUT, '>', "$Dir/$log";
        open STDERR, '>&', \*STDOUT;
        { exec @cmd }
        POSIX::_exit(1);
    }

    push @Pids, $pid;
    return $pid;
}

sub wait_for {
    my ($what, $check, $seconds) = @_;

    for (1 .. $seconds * 10) {
        return 1 if $check->();
        sleep 0.1;
    }

    die "$what did not happen in $seconds s";
}

END {
    local $?;
    kill 'TERM', @Pids if @Pids;
    waitpid $_, 0 for @Pids;
}

sub url { "http://127.0.0.1:$ENV{TEST_NGINX_SERVER_PORT}$_[0]" }

# POST /passkey/bind as $user: (status, job id, problem code)
sub bind_as {
    my ($user) = @_;

    my $res = HTTP::Tiny->new(timeout => 30)->post(url('/passkey/bind'),
        { headers => { 'Content-Type' => 'application/json',
                       'X-User' => $user },
          content => '{}' });
    sdk_record_link(sdk_links_in($res->{content}));

    my ($job) = $res->{content} =~ /"job_id":"([0-9a-f]{16})"/;
    my ($code) = $res->{content} =~ /"code":"(\w+)"/;

    return ($res->{status}, $job, $code);
}

# binds one after another for $seconds as users "$prefix-N", while
# $during runs in a child from 1.5 s on, and $watch (if any) is called
# between requests to a fast location on the same worker (/ready): the
# binds ([time, status, job id or "-", code or "-"]), the slowest answer
# of /ready, when the binds began and when $during did
sub binds_while {
    my ($seconds, $prefix, $during, $watch) = @_;

    my $out = "$Dir/binds-$prefix";

    my $binder = fork;
    die "fork: $!" unless defined $binder;

    if ($binder == 0) {
        open my $fh, '>', $out or POSIX::_exit(1);
        my $n = 0;
        my $end = time + $seconds;

        while (time < $end) {
            my ($status, $job, $code) = bind_as("$prefix-" . ++$n);
            printf $fh "%.3f %d %s %s\n", time, $status, $job // '-',
                   $code // '-';
        }

        close $fh;
        POSIX::_exit(0);
    }

    my $t0 = time;
    my $slowest = 0;
    my ($doer, $began);

    while (time - $t0 < $seconds) {
        if (!defined $doer && time - $t0 > 1.5) {
            $began = time;
            $doer = fork;
            die "fork: $!" unless defined $doer;
            if ($doer == 0) {
                $during->();
                POSIX::_exit(0);
            }
        }

        my $t = time;
        HTTP::Tiny->new(timeout => 5)->get(url('/ready'));
        $t = time - $t;
        $slowest = $t if $t > $slowest;

        $watch->() if $watch;

        sleep 0.05;
    }

    waitpid $binder, 0;
    waitpid $doer, 0 if $doer;

    open my $fh, '<', $out or die $!;
    my @binds = map { [split ' '] } <$fh>;
    close $fh;

    return (\@binds, $slowest, $t0, $began);
}

1;
