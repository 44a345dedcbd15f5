package t::Passkey;

# Shared setup for the passkey test files.
#
# Sections it adds: "--- fault" and "--- fake_config" (JSON lines sent to
# the stand-in's control API for the block's tenant), "--- redis_job"
# (what the job stored in Redis must hold); "@TENANT@" in http_config or
# config stands for the block's tenant.
#
# Every block gets its own tenant at the API stand-in, so blocks never see
# each other's identities, jobs, tokens or faults, and its own Redis key
# prefix.  Unless its http_config says "# passkey: no defaults", a block's
# http_config starts with a complete passkey configuration pointing at the
# stand-in (passkey_api_url at its API host, passkey_auth_url at its auth
# host) and Redis, and its server gets "location /fake/", a proxy to the
# stand-in's control API for that tenant.  Every block also checks that
# no secret reached the error log.
#
# Load this before Test::Nginx::Socket: it gives each test file its own
# servroot so that the suite's logs can be searched afterwards.
#
# Every credential_binding_link in a response body (of a block, or read
# with read_response) is recorded for Beyond Identity's SDK to check after
# the run (util/run-tests, util/sdk/oracle); flows that get links or /bind
# URLs over their own HTTP requests record them with sdk_record_link().

use strict;
use warnings;
use IO::Socket::INET;
use HTTP::Tiny;
use File::Basename qw(basename);
use Fcntl qw(:flock);
use JSON::PP ();

our @EXPORT = qw(redis_cmd block_tenant block_prefix run_flows read_response
                 redis_jobs sdk_record_link sdk_links_in nginx_pid
                 reload_nginx);
use base 'Exporter';

BEGIN {
    if ($ENV{TEST_NGINX_SERVROOT_BASE}) {
        my $name = basename($0, '.t');
        $ENV{TEST_NGINX_SERVROOT} = "$ENV{TEST_NGINX_SERVROOT_BASE}/$name";
    }

    $ENV{TEST_NGINX_BI_PORT} ||= 18999;
    $ENV{TEST_NGINX_BI_AUTH_PORT} ||= 18997;
    $ENV{TEST_NGINX_REDIS_PORT} ||= 16379;
}

my $run = sprintf "%x%x", time() % 0x100000, $$ % 0x1000;

sub file_tag {
    my $name = basename($0, '.t');
    $name =~ s/[^A-Za-z0-9]//g;
    return substr($name, 0, 12);
}

# the tenant of block number $seq in this file and run
sub block_tenant {
    my ($seq) = @_;
    return "t$run" . file_tag() . "b$seq";
}

sub block_prefix {
    my ($seq) = @_;
    return "test:" . block_tenant($seq) . ":";
}

our @SECRET_PATTERNS = (
    qr/passkey-secret/,
    qr/passkey-static-token/,
    qr/invokeAuthenticator/,
    qr/token=[A-Za-z0-9_-]{20}/,
    qr/Bearer [A-Za-z0-9_-]{20}/,
    qr/Basic [A-Za-z0-9+\/=]{20}/,
);

sub defaults {
    my ($tenant) = @_;

    return <<"CONF";
    passkey_api_url http://127.0.0.1:\$TEST_NGINX_BI_PORT;
    passkey_auth_url http://127.0.0.1:\$TEST_NGINX_BI_AUTH_PORT;
    passkey_tenant_id $tenant;
    passkey_realm_id r1;
    passkey_authenticator_config_id 67bb0acf12e5c899;
    passkey_application_id app1;
    passkey_client_id passkey-client;
    passkey_client_secret_file \$TEST_NGINX_SECRETS/client_secret;
    passkey_redis 127.0.0.1:\$TEST_NGINX_REDIS_PORT;
    passkey_redis_prefix test:$tenant:;
    # sign-up by RETURN (the default mode sends emails): most blocks bind
    # new users and look at their links
    passkey_delivery_method RETURN;
CONF
}

sub fake_location {
    my ($tenant) = @_;

    return <<"CONF";
    location /fake/ {
        rewrite ^/fake/(.*)\$ /__fake/\$1?tenant=$tenant break;
        proxy_pass http://127.0.0.1:\$TEST_NGINX_BI_PORT;
    }
CONF
}

sub import {
    my $class = shift;

    $class->export_to_level(1, $class, @EXPORT);

    require Test::Nginx::Socket;

    Test::Nginx::Socket::add_block_preprocessor(sub {
        my $block = shift;
        my $tenant = block_tenant($block->seq_num);

        my $http = $block->http_config // '';

        # "@TENANT@" in a block's configuration: its tenant, for blocks that
        # write their own passkey settings
        for my $section (qw(http_config config)) {
            my $text = $block->$section;
            next unless defined $text && $text =~ /\@TENANT\@/;
            $text =~ s/\@TENANT\@/$tenant/g;
            $block->set_value($section, $text);
        }

        $http = $block->http_config // '';

        unless ($http =~ /# passkey: no defaults/) {
            $block->set_value('http_config', defaults($tenant) . $http);
            $block->set_value('config',
                              fake_location($tenant) . ($block->config // ''));
        }

        fake_setup($tenant, 'config', $block->fake_config);
        fake_setup($tenant, 'faults', $block->fault);

        unless ($block->must_die) {
            # the block's own patterns, and always the secrets
            my $own = $block->no_error_log;
            my @own = !defined $own ? ()
                    : ref $own ? @$own
                    : grep { /\S/ } split /\n/, $own;
            $block->set_value('no_error_log', [@own, @SECRET_PATTERNS]);
        }
    });

    Test::Nginx::Socket::add_response_body_check(\&check_redis_job);
    Test::Nginx::Socket::add_response_body_check(\&check_block_error_log);
    Test::Nginx::Socket::add_response_body_check(\&record_sdk_links);
}

# Links for the SDK check: util/run-tests gives the file, in its work
# directory (never in a log or the servroot: links are bearer secrets),
# and after the run asks Beyond Identity's SDK whether it takes each one
# (isBindPasskeyUrl).  Without PASSKEY_LINKS_FILE (prove run by hand)
# nothing is recorded.  Forked flows may record too: lines are appended
# under a lock.
sub sdk_record_link {
    my @urls = grep { defined && $_ ne '' } @_;
    my $file = $ENV{PASSKEY_LINKS_FILE};

    return unless @urls && $file;

    for (@urls) {
        die "a link with a line break: cannot record it" if /[\r\n]/;
    }

    open my $fh, '>>', $file or die "cannot record links in $file: $!";
    flock $fh, LOCK_EX or die "cannot lock $file: $!";
    print $fh map { "$_\n" } @urls;
    close $fh or die "cannot record links in $file: $!";
}

# the credential_binding_link values in a response body, JSON-unescaped
sub sdk_links_in {
    my ($body) = @_;
    my @links;

    return () unless defined $body;

    while ($body =~ /"credential_binding_link"\s*:\s*("(?:[^"\\]|\\.)*")/g) {
        my $json = $1;
        my $link = eval { JSON::PP->new->allow_nonref->decode($json) };
        push @links, defined $link ? $link : substr($json, 1, -1);
    }

    return @links;
}

sub record_sdk_links {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;

    return if $dry_run;

    sdk_record_link(sdk_links_in($body));
}

# "--- block_error_log": lines (substrings, or an eval array of regexes)
# that the requests of the block wrote to the error log, all checked after
# its last request: "--- error_log" is checked request by request, against
# what each one added.  Each block's nginx starts with an empty logs/.
# "--- block_no_error_log": the same, for lines that must not be there.
sub check_block_error_log {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;

    my $want = $block->block_error_log;
    my $unwanted = $block->block_no_error_log;
    return if $dry_run || !(defined $want || defined $unwanted);

    my $reqs = $block->request;
    return unless $req_idx == (ref $reqs eq 'ARRAY' ? $#$reqs : 0);

    # a worker may still be writing the last request's lines
    select undef, undef, undef, 0.2;

    my $file = ($ENV{TEST_NGINX_SERVROOT} || 't/servroot') . '/logs/error.log';
    my $text = '';

    if (open my $fh, '<', $file) {
        local $/;
        $text = <$fh>;
        close $fh;
    }

    my $list = sub {
        my ($spec) = @_;
        return () unless defined $spec;
        return ref $spec eq 'ARRAY' ? @$spec
             : ref $spec ? ($spec)
             : grep { /\S/ } split /\n/, $spec;
    };

    for my $pat ($list->($want)) {
        Test::More::ok(ref $pat ? $text =~ $pat : index($text, $pat) >= 0,
                       $block->name . " - the error log has \"$pat\"");
    }

    for my $pat ($list->($unwanted)) {
        Test::More::ok(ref $pat ? $text !~ $pat : index($text, $pat) < 0,
                       $block->name . " - the error log lacks \"$pat\"");
    }
}

# "--- redis_job": after a response that names a job_id, the job's Redis
# hash must hold fields matching these "field: regex" lines, carry a TTL
# in the range of "ttl: MIN MAX" (seconds) if given, and hold no secret.
sub check_redis_job {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;

    my $spec = $block->redis_job;
    return unless defined $spec;

    my $name = $block->name;

    return if $dry_run;
    return unless $body =~ /"job_id":"([^"]+)"/;

    my $key = block_prefix($block->seq_num) . "job:$1";
    my $list = redis_cmd('HGETALL', $key);
    my %job = @{ $list || [] };

    Test::More::ok(scalar keys %job, "$name - redis_job $key exists");

    for my $line (split /\n/, $spec) {
        next unless $line =~ /^\s*(\w+):\s*(.*?)\s*$/;
        my ($field, $want) = ($1, $2);

        if ($field eq 'ttl') {
            my ($min, $max) = split /\s+/, $want;
            my $ttl = redis_cmd('TTL', $key);
            Test::More::ok($ttl >= $min && $ttl <= $max,
                           "$name - redis_job ttl $ttl in [$min, $max]");
            next;
        }

        Test::More::like($job{$field} // '', qr/$want/,
                         "$name - redis_job $field");
    }

    my $all = join ' ', %job;
    Test::More::unlike($all, qr/token=|invokeAuthenticator/,
                       "$name - redis_job holds no binding link");
}

# "--- fault" and "--- fake_config": one JSON object a line, posted to the
# stand-in's control API for the block's tenant before the block runs.
sub fake_setup {
    my ($tenant, $what, $spec) = @_;

    return unless defined $spec;

    for my $json (grep { /\S/ } split /\n/, $spec) {
        my $res = HTTP::Tiny->new(timeout => 5)->post(
            "http://127.0.0.1:$ENV{TEST_NGINX_BI_PORT}/__fake/$what"
            . "?tenant=$tenant",
            { headers => { 'Content-Type' => 'application/json' },
              content => $json });

        die "stand-in refused $what $json: $res->{status} $res->{content}"
            unless $res->{success};
    }
}

# Perl flows that need values from earlier answers (eval sections are
# evaluated before a block runs): $flows->{name} runs, with the block and
# its name, after the request of the block "TEST n: name".
sub run_flows {
    my ($flows) = @_;

    Test::Nginx::Socket::add_response_body_check(sub {
        my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;

        return if $dry_run;

        my ($key) = $block->name =~ /\bTEST \d+: (.*)$/;
        my $flow = $key && $flows->{$key} or return;

        $flow->($block, $block->name);
    });
}

# One HTTP/1.1 answer with a Content-Length, read from a socket of the
# caller's: for flows that hold connections open (workers, concurrency).
sub read_response {
    my ($sock) = @_;

    my $status_line = <$sock>;
    die "nginx closed the connection" unless defined $status_line;
    my ($status) = $status_line =~ m{^HTTP/1\.[01] (\d{3}) }
        or die "bad status line: $status_line";

    my %h;
    while (my $line = <$sock>) {
        $line =~ s/\r?\n$//;
        last if $line eq '';
        my ($k, $v) = split /:\s*/, $line, 2;
        $h{lc $k} = $v;
    }

    die "no Content-Length" unless defined $h{'content-length'};
    my $content = '';
    while (length $content < $h{'content-length'}) {
        my $n = read($sock, $content, $h{'content-length'} - length $content,
                     length $content);
        die "short body" unless $n;
    }

    sdk_record_link(sdk_links_in($content));

    return { status => $status, headers => \%h, content => $content };
}

# the username and delivery method of every job the block keeps in Redis,
# as "username delivery_method" lines in sorted order
sub redis_jobs {
    my ($block) = @_;
    my $keys = redis_cmd('KEYS', block_prefix($block->seq_num) . 'job:*');
    my @jobs;

    for my $key (@{ $keys || [] }) {
        my %job = @{ redis_cmd('HGETALL', $key) || [] };
        push @jobs, "$job{username} $job{delivery_method}";
    }

    return join "\n", sort @jobs;
}

# The pid of the block's nginx, once it has loaded its configuration (it
# writes the pid file after that); under valgrind, nginx starts in the
# foreground and slowly, after "--- init" code has begun to run.
sub nginx_pid {
    my $file = ($ENV{TEST_NGINX_SERVROOT} || 't/servroot') . '/logs/nginx.pid';

    for (1 .. 300) {
        if (open my $fh, '<', $file) {
            my $pid = <$fh>;
            close $fh;
            return $1 if defined $pid && $pid =~ /^(\d+)$/m;
        }

        select(undef, undef, undef, 0.1);
    }

    die "nginx wrote no pid file ($file)\n";
}

# A graceful reload of the block's nginx with its configuration as $edit
# returns it (called with the text), then a wait of up to 10 s for $ready
# to return true: the new workers serve.  True if they did.
sub reload_nginx {
    my ($edit, $ready) = @_;
    my $file = ($ENV{TEST_NGINX_SERVROOT} || 't/servroot') . '/conf/nginx.conf';

    open my $fh, '<', $file or die "$file: $!";
    my $conf = do { local $/; <$fh> };
    close $fh;

    $conf = $edit->($conf);

    open $fh, '>', $file or die "$file: $!";
    print $fh $conf;
    close $fh;

    kill 'HUP', nginx_pid();

    for (1 .. 100) {
        return 1 if $ready->();
        select(undef, undef, undef, 0.1);
    }

    return 0;
}

# A minimal RESP client for assertions on what the module stored.
sub redis_cmd {
    my @args = @_;

    my $sock = IO::Socket::INET->new(
        PeerAddr => '127.0.0.1',
        PeerPort => $ENV{TEST_NGINX_REDIS_PORT},
        Timeout  => 3,
    ) or die "cannot connect to redis: $!";

    my $req = '*' . scalar(@args) . "\r\n";
    $req .= '$' . length($_) . "\r\n$_\r\n" for @args;
    print $sock $req;

    my $reply = read_reply($sock);
    close $sock;

    return $reply;
}

sub read_reply {
    my ($sock) = @_;

    my $line = <$sock>;
    die "redis closed the connection" unless defined $line;
    $line =~ s/\r\n$//;

    my ($type, $rest) = (substr($line, 0, 1), substr($line, 1));

    return $rest if $type eq '+' || $type eq ':';
    die "redis error: $rest" if $type eq '-';

    if ($type eq '$') {
        return undef if $rest < 0;
        my $buf = '';
        read($sock, $buf, $rest + 2) == $rest + 2 or die "short read";
        return substr($buf, 0, $rest);
    }

    if ($type eq '*') {
        return undef if $rest < 0;
        return [map { read_reply($sock) } 1 .. $rest];
    }

    die "unexpected redis reply \"$line\"";
}

1;
