package Test::Nginx::Lite::Server;

# The nginx side of the Test::Nginx::Socket stand-in: global settings, the
# server root, the generated nginx.conf, starting and stopping nginx, and
# reading its log files.
#
# Everything here follows the behaviour of openresty's Test::Nginx::Util
# (the module the real Test::Nginx::Socket builds on), so that the same
# t/*.t files mean the same thing under both.  See Test::Nginx::Socket's
# POD for the list of supported features and the known differences.

use strict;
use warnings;

use Exporter 'import';
use File::Spec ();
use File::Path qw( make_path remove_tree );
use IO::Socket::INET ();
use POSIX qw( SIGQUIT SIGKILL SIGTERM WNOHANG );
use Time::HiRes qw( sleep );
use Test::More ();

our @EXPORT_OK;
our %EXPORT_TAGS;

sub gen_rand_port (;$$);
sub bail_out (@);

# --------------------------------------------------------------------------
# Settings.  Defaults and environment variables as in the real module.
# --------------------------------------------------------------------------

our $Verbose          = $ENV{TEST_NGINX_VERBOSE};
our $NginxBinary      = $ENV{TEST_NGINX_BINARY} || 'nginx';
our $Workers          = 1;
our $WorkerConnections = 64;
our $LogLevel         = $ENV{TEST_NGINX_LOG_LEVEL} || 'debug';
our $MasterProcessEnabled = $ENV{TEST_NGINX_MASTER_PROCESS} || 'off';
our $DaemonEnabled    = 'on';
our $ServerAddr       = '127.0.0.1';
our $ServerName       = 'localhost';
our $ServerPort       = $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT}
                        || 1984;
our $ServerPortForClient = $ENV{TEST_NGINX_CLIENT_PORT} || $ServerPort
                        || 1984;
our $NoRootLocation   = 0;
our $TestNginxSleep   = $ENV{TEST_NGINX_SLEEP} || 0.015;
our $Timeout          = $ENV{TEST_NGINX_TIMEOUT} || 3;
our $ForceRestartOnTest = defined $ENV{TEST_NGINX_FORCE_RESTART_ON_TEST}
                        ? $ENV{TEST_NGINX_FORCE_RESTART_ON_TEST} : 1;
our $LoadModules      = $ENV{TEST_NGINX_LOAD_MODULES};
our $UseValgrind      = $ENV{TEST_NGINX_USE_VALGRIND};
our $ValgrindExitOnFirstErr = $ENV{TEST_NGINX_VALGRIND_EXIT_ON_FIRST_ERR};
our $EventType        = $ENV{TEST_NGINX_EVENT_TYPE};
our $ReusePort        = $ENV{TEST_NGINX_REUSE_PORT};
our $WorkerUser       = $ENV{TEST_NGINX_WORKER_USER};
our $Randomize        = $ENV{TEST_NGINX_RANDOMIZE};
our $NoShuffle        = $ENV{TEST_NGINX_NO_SHUFFLE} || 0;
our $CheckAccumErrLog = $ENV{TEST_NGINX_CHECK_ACCUM_ERR_LOG};
our $BuildSlaveName   = $ENV{TEST_NGINX_BUILDSLAVE};
our $RepeatEach       = 1;
our $NoLongString;
our $ConfigPreamble   = '';
our $FilterHttpConfig;
our @EnvToNginx;

# LD_PRELOAD as it was when we started; "--- no_mockeagain" strips
# mockeagain.so from it for one block, other blocks get it back.
our $OrigLdPreload    = $ENV{LD_PRELOAD};

# Set by run_tests() / the block runner.
our $NginxVersion;       # canonical, e.g. 1.022001
our $OpenSSLVersion;     # canonical, e.g. 3.000019
our $ChildPid;           # nginx run in the foreground (valgrind mode)
our $TcpServerPid;       # the --- tcp_listen server of the current block
our $ErrLogFilePos = 0;  # where the next error-log read starts
our $RandPorts = {};     # TEST_NGINX_RAND_PORT_N values of the current block

if (defined $WorkerUser && $WorkerUser !~ /^\w[-\w]+(?:\s+\w[-\w]+)?$/) {
    die "Bad value in the env TEST_NGINX_WORKER_USER: $WorkerUser\n";
}

if ($Randomize) {
    $ServerPort = gen_rand_port(1000, {});
    if (!defined $ServerPort) {
        die "Cannot find an available listening port number after 1000 "
            . "attempts.\n";
    }
    $ServerPortForClient = $ServerPort;
}

# --------------------------------------------------------------------------
# Server root layout
# --------------------------------------------------------------------------

our $ServRoot = $Randomize
    ? File::Spec->rel2abs("t/servroot_$ServerPort")
    : ($ENV{TEST_NGINX_SERVROOT} || File::Spec->rel2abs('t/servroot'));

# Test files may use $TEST_NGINX_SERVER_ROOT in their sections.
$ENV{TEST_NGINX_SERVER_ROOT} = $ServRoot;

our $LogDir     = File::Spec->catfile($ServRoot, 'logs');
our $ErrLogFile = File::Spec->catfile($LogDir, 'error.log');
our $AccLogFile = File::Spec->catfile($LogDir, 'access.log');
our $HtmlDir    = File::Spec->catfile($ServRoot, 'html');
our $ConfDir    = File::Spec->catfile($ServRoot, 'conf');
our $ConfFile   = File::Spec->catfile($ConfDir, 'nginx.conf');
our $PidFile    = File::Spec->catfile($LogDir, 'nginx.pid');
our $CacheDir   = File::Spec->catfile($ServRoot, 'cache');

$EXPORT_TAGS{settings} = [qw(
    $Verbose $NginxBinary $Workers $WorkerConnections $LogLevel
    $MasterProcessEnabled $DaemonEnabled $ServerAddr $ServerName
    $ServerPort $ServerPortForClient $NoRootLocation $TestNginxSleep
    $Timeout $ForceRestartOnTest $UseValgrind $RepeatEach $NoShuffle
    $CheckAccumErrLog $BuildSlaveName $NoLongString $ConfigPreamble
    $FilterHttpConfig @EnvToNginx $NginxVersion $OpenSSLVersion $ChildPid
    $ErrLogFilePos $RandPorts $ServRoot $HtmlDir $ErrLogFile $AccLogFile
    $PidFile $ConfFile
)];

$EXPORT_TAGS{functions} = [qw(
    bail_out cleanup add_cleanup_handler is_running parse_time
    gen_rand_port expand_env_in_text get_nginx_version get_canon_version
    setup_server_root write_user_files write_config_file
    nginx_start_command start_nginx_daemon start_nginx_foreground
    stop_nginx_from_pidfile stop_foreground_nginx kill_process
    get_pid_from_pidfile missing_directive_in_error_log
    error_log_data access_log_data can_run
)];

@EXPORT_OK = (@{ $EXPORT_TAGS{settings} }, @{ $EXPORT_TAGS{functions} });

# --------------------------------------------------------------------------
# Cleanup and bail-out
# --------------------------------------------------------------------------

our @CleanupHandlers;

sub add_cleanup_handler ($) {
    unshift @CleanupHandlers, shift;
}

# Stops everything we started that is not the daemonised nginx (that one is
# stopped through its pid file).
sub cleanup () {
    warn "cleaning up everything\n" if $Verbose;

    for my $hdl (@CleanupHandlers) {
        $hdl->();
    }

    if (defined $TcpServerPid) {
        kill_process($TcpServerPid, 1, "cleanup");
        undef $TcpServerPid;
    }

    if (defined $ChildPid) {
        kill_process($ChildPid, 1, "cleanup");
        undef $ChildPid;
    }
}

# Aborts the whole test run (not only this file), as the real one does.
sub bail_out (@) {
    cleanup();
    Test::More::BAIL_OUT(@_);
}

# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------

# "1.5", "1.5s" and "500ms" as in the real module.
sub parse_time ($) {
    my $tm = shift;

    if (defined $tm) {
        if ($tm =~ s/([^_a-zA-Z])ms$/$1/) {
            $tm = $tm / 1000;

        } else {
            $tm =~ s/([^_a-zA-Z])s$/$1/;
        }
    }

    return $tm;
}

# kill(0) alone is not enough: a daemonised nginx that has exited stays a
# zombie until init reaps it, and some container inits reap only every few
# seconds.  A zombie has exited, so it does not count as running.
sub is_running ($) {
    my $pid = shift;

    return 0 unless defined $pid && $pid =~ /^\d+$/ && $pid > 0;
    return 0 unless kill 0, $pid;

    if (open my $in, '<', "/proc/$pid/stat") {
        my $stat = <$in>;
        close $in;
        if (defined $stat && $stat =~ /^\d+ \(.*\) (\S)/s && $1 eq 'Z') {
            return 0;
        }
    }

    return 1;
}

# A port we can bind on $ServerAddr now, not in %$used_ports.  The range
# starts above 1984..1987, which the real module keeps for itself.
sub gen_rand_port (;$$) {
    my ($tries, $used_ports) = @_;

    $tries //= 1000;
    $used_ports //= {};

    for (1 .. $tries) {
        my $port = int(rand 63547) + 1988;
        next if $used_ports->{$port};

        my $sock = IO::Socket::INET->new(
            LocalAddr => $ServerAddr,
            LocalPort => $port,
            Proto     => 'tcp',
            Listen    => 5,
            Reuse     => 1,
        );

        if ($sock) {
            $sock->close;
            return $port;
        }
    }

    return undef;
}

# Replaces $TEST_NGINX_FOO with $ENV{TEST_NGINX_FOO}, and
# $TEST_NGINX_RAND_PORT_N with a free port that stays the same for the
# whole block.  An undefined variable aborts the run, as in the real one.
sub expand_env_in_text ($$$) {
    my ($text, $name, $rand_ports) = @_;

    return undef if !defined $text;

    $rand_ports //= $RandPorts;

    $text =~ s{\$(TEST_NGINX_[_A-Z0-9]+)}{
        _expand_one_env_var($1, $name, $rand_ports)
    }eg;

    return $text;
}

sub _expand_one_env_var {
    my ($var, $name, $rand_ports) = @_;

    if ($var =~ /^TEST_NGINX_RAND_PORT_[0-9]+$/) {
        if (!defined $rand_ports->{$var}) {
            my %used = ($ServerPort => 1,
                        map { $_ => 1 } values %$rand_ports);
            my $port = gen_rand_port(1000, \%used);
            if (!defined $port) {
                bail_out("$name - Cannot find an available listening port "
                         . "number for $var.\n");
            }
            $rand_ports->{$var} = $port;
        }
        return $rand_ports->{$var};
    }

    if (!defined $ENV{$var}) {
        bail_out("$name - No environment $var defined.\n");
    }

    return $ENV{$var};
}

# "$NginxBinary -V" output, read once.
my $NginxV;

sub nginx_V_output () {
    if (!defined $NginxV) {
        my $out = `$NginxBinary -V 2>&1`;
        if (!defined $out || $? != 0) {
            $out //= '';
            bail_out("Failed to get the version of the Nginx in PATH: $out");
        }
        $NginxV = $out;
    }
    return $NginxV;
}

sub get_canon_version (@) {
    sprintf "%d.%03d%03d", $_[0], $_[1], $_[2];
}

sub _canon_openssl_version (@) {
    my ($maj, $min, $patch, $letter) = @_;
    if (defined $letter) {
        return sprintf "%d.%03d%03d%03d", $maj, $min, $patch,
                       ord($letter) - ord('a');
    }
    return get_canon_version($maj, $min, $patch);
}

# Sets $OpenSSLVersion as a side effect, and returns the nginx version in
# the canonical form used by --- skip_nginx.
sub get_nginx_version () {
    my $out = nginx_V_output();

    if ($out =~ m{built with OpenSSL (\d+)\.(\d+)\.(\d+)([a-z])?}s) {
        $OpenSSLVersion = _canon_openssl_version($1, $2, $3, $4);
    }

    if ($out =~ m{(?:nginx|openresty+?)[^/]*/(\d+)\.(\d+)\.(\d+)}s
        || $out =~ m{\w+/(\d+)\.(\d+)\.(\d+)}s)
    {
        return get_canon_version($1, $2, $3);
    }

    bail_out("Failed to parse the output of \"nginx -V\": $out\n");
}

sub can_run ($) {
    my $cmd = shift;

    if ($cmd =~ m{[/\\]}) {
        return (-f $cmd && -x $cmd) ? $cmd : undef;
    }

    require Config;
    for my $dir ((split /\Q$Config::Config{path_sep}\E/, $ENV{PATH} // ''),
                 '.')
    {
        next if $dir eq '';
        my $abs = File::Spec->catfile($dir, $cmd);
        return $abs if -f $abs && -x $abs;
    }

    return undef;
}

# --------------------------------------------------------------------------
# Server root and files
# --------------------------------------------------------------------------

# Recreates the server root from scratch for a freshly started nginx.  Only
# the directories the runner itself creates are removed, so that a
# mistaken TEST_NGINX_SERVROOT never deletes unrelated data: if anything
# else is left in it, we bail out instead.
sub setup_server_root () {
    if (-d $ServRoot) {
        remove_tree($ConfDir, glob("$ServRoot/*_cache"),
                    glob("$ServRoot/*_temp"));
        remove_tree($CacheDir, $HtmlDir, $LogDir);
        rmdir $ServRoot
            or bail_out("Can't remove $ServRoot (not empty?): $!");
    }

    for my $dir ($ServRoot, $LogDir, $HtmlDir) {
        mkdir $dir or bail_out("Failed to do mkdir $dir\n");
    }

    my $index_file = "$HtmlDir/index.html";
    open my $out, '>', $index_file
        or bail_out("Can't open $index_file for writing: $!\n");
    print $out '<html><head><title>It works!</title></head>'
               . '<body>It works!</body></html>';
    close $out;

    mkdir $ConfDir or bail_out("Failed to do mkdir $ConfDir\n");
}

# --- user_files: either text with ">>> name [touch-date]" headers, or (via
# eval) an array of [name, body, date].  Relative names go under html/.
sub write_user_files ($$) {
    my ($block, $rand_ports) = @_;

    my $name = $block->name;
    my $files = $block->user_files;
    return unless $files;

    if (!ref $files) {
        $files = _parse_user_files_text($files);

    } elsif (ref $files ne 'ARRAY') {
        bail_out("$name - wrong value type: ", ref $files,
                 ", only scalar or ARRAY are accepted");
    }

    for my $file (@$files) {
        my ($fname, $body, $date) = @$file;
        $body //= '';

        my $path = $fname =~ m{^/} ? $fname : "$HtmlDir/$fname";

        if ($path =~ m{(.*)/}) {
            my $dir = $1;
            if (!-d $dir) {
                make_path($dir)
                    or bail_out("$name - Cannot create directory ", $dir);
            }
        }

        $body = expand_env_in_text($body, $name, $rand_ports);

        open my $out, '>', $path
            or bail_out("$name - Cannot open $path for writing: $!\n");
        binmode $out;
        print $out $body;
        close $out;

        if ($date) {
            my $cmd = "TZ=GMT touch -t '$date' $HtmlDir/$fname";
            system($cmd) == 0
                or bail_out("Failed to run shell command: $cmd\n");
        }
    }
}

sub _parse_user_files_text {
    my $raw = shift;

    my @files;
    my ($fname, $body, $date);

    for my $line (split /^/m, $raw) {
        if ($line =~ /^>>> (\S+)(?:\s+(.+))?/) {
            push @files, [$fname, $body, $date] if $fname;
            ($fname, $date) = ($1, $2);
            undef $body;

        } else {
            $body .= $line;
        }
    }

    push @files, [$fname, $body, $date] if $fname;

    return \@files;
}

# --------------------------------------------------------------------------
# nginx.conf
# --------------------------------------------------------------------------

# Environment variables the real module always passes to nginx (nginx
# clears all others from the worker environment).
my @DefaultEnvBefore = qw(
    MOCKEAGAIN_VERBOSE MOCKEAGAIN MOCKEAGAIN_WRITE_TIMEOUT_PATTERN
    LD_PRELOAD LD_LIBRARY_PATH DYLD_INSERT_LIBRARIES DYLD_FORCE_FLAT_NAMESPACE
);
my @DefaultEnvAfter = qw( ASAN_OPTIONS MOCKNOEAGAIN_VERBOSE MOCKNOEAGAIN );

# Writes servroot/conf/nginx.conf with the same layout (and therefore the
# same valid contexts for each section) as the real module:
#
#   main settings, env lines, --- main_config
#   http { logs, temp paths, --- http_config,
#          server { listen PORT; server_name; --- config; location / } }
#   --- post_main_config
#   events { ... }
#
# $foreground: nginx runs under valgrind for this block ("daemon off").
sub write_config_file ($$$;$) {
    my ($block, $config, $rand_ports, $foreground) = @_;

    my $name = $block->name;

    my $daemon = $foreground ? 'off' : $DaemonEnabled;
    my $log_level = $block->log_level || $LogLevel;

    $config //= '';

    my $http_config = expand_env_in_text($block->http_config, $name,
                                         $rand_ports) // '';
    if ($FilterHttpConfig) {
        $http_config = $FilterHttpConfig->($http_config);
    }

    my $main_config = $block->main_config // '';
    if ($LoadModules) {
        my @modules = map { "load_module $_;" } grep { $_ }
                      split /\s+/, $LoadModules;
        $main_config = join ' ', @modules, $main_config if @modules;
    }
    $main_config = expand_env_in_text($main_config, $name, $rand_ports);

    my $post_main_config = expand_env_in_text($block->post_main_config // '',
                                              $name, $rand_ports);

    my $err_log_file = $block->error_log_file || $ErrLogFile;
    $err_log_file = expand_env_in_text($err_log_file, $name, $rand_ports);

    my $server_name = $block->server_name // $ServerName;

    my $nginx_V = nginx_V_output();
    my @temp_paths;
    push @temp_paths, "client_body_temp_path $ServRoot/client_body_temp;"
        unless $http_config =~ /\bclient_body_temp_path\b/;
    push @temp_paths, "proxy_temp_path $ServRoot/proxy_temp;"
        unless $http_config =~ /\bproxy_temp_path\b/;
    push @temp_paths, "fastcgi_temp_path $ServRoot/fastcgi_temp;"
        unless $nginx_V =~ /--without-http_fastcgi_module/;
    push @temp_paths, "scgi_temp_path $ServRoot/scgi_temp;"
        unless $nginx_V =~ /--without-http_scgi_module/;
    push @temp_paths, "uwsgi_temp_path $ServRoot/uwsgi_temp;"
        unless $nginx_V =~ /--without-http_uwsgi_module/;

    my $listen_opts = $ReusePort ? ' reuseport' : '';

    my $conf = '';

    $conf .= <<"_EOC_";
worker_processes  $Workers;
daemon $daemon;
master_process $MasterProcessEnabled;
error_log $err_log_file $log_level;
pid       $PidFile;
_EOC_

    $conf .= "env $_;\n" for @DefaultEnvBefore;

    for my $v (@EnvToNginx) {
        $conf .= $v =~ /\s/ ? "env '$v';\n" : "env $v;\n";
    }

    # (The comment and blank lines are there so that line numbers in
    # nginx's messages are the same as with the real module.)
    $conf .= <<"_EOC_";
#env LUA_PATH;
#env LUA_CPATH;

$main_config

http {
    access_log $AccLogFile; @temp_paths
    #access_log off;

    default_type text/plain;
    keepalive_timeout  68000ms;

$http_config
    server {
        listen          $ServerPort$listen_opts;
        #placeholder
        server_name     '$server_name';
        
        client_max_body_size 30M;
        #client_body_buffer_size 4k;

        # Begin preamble config...
$ConfigPreamble
        # End preamble config...

        # Begin test case config...
$config
        # End test case config.

_EOC_

    if (!$NoRootLocation) {
        $conf .= <<"_EOC_";
        location / {
            root $HtmlDir;
            index index.html index.htm;
        }
_EOC_
    }

    $conf .= <<"_EOC_";
    }
}

$post_main_config

#timer_resolution 100ms;

events {
    accept_mutex off;

    worker_connections  $WorkerConnections;
_EOC_

    $conf .= "    use $EventType;\n" if $EventType;
    $conf .= "}\n";

    $conf .= "env $_;\n" for @DefaultEnvAfter;

    # The real module runs the workers as root when the tests run as root;
    # without this nginx would switch them to "nobody", which cannot read
    # files under a root-owned servroot.
    if (defined $WorkerUser) {
        $conf .= "user $WorkerUser;\n";

    } elsif ($> == 0) {
        $conf .= "user root;\n";
    }

    # --- no_mockeagain: drop mockeagain.so from LD_PRELOAD for this block
    if (defined $block->no_mockeagain) {
        if (defined $OrigLdPreload) {
            (my $preload = $OrigLdPreload) =~ s/[^ ]+mockeagain\.so//;
            $ENV{LD_PRELOAD} = $preload;
        }

    } elsif (defined $OrigLdPreload) {
        $ENV{LD_PRELOAD} = $OrigLdPreload;

    } else {
        # as Test::Nginx does: what a test file set in between is undone
        delete $ENV{LD_PRELOAD};
    }

    open my $out, '>', $ConfFile
        or bail_out("Can't open $ConfFile for writing: $!\n");
    print $out $conf;
    close $out;
}

# --------------------------------------------------------------------------
# Starting nginx
# --------------------------------------------------------------------------

# The shell command line that starts nginx for one block, including the
# valgrind wrapper when TEST_NGINX_USE_VALGRIND is set.  stdout goes to
# /dev/null, stderr stays ours (so valgrind's report reaches the caller).
sub nginx_start_command ($$) {
    my ($block, $use_valgrind) = @_;

    # -e (early error log) exists since nginx 1.19.5.
    my $cmd = $NginxVersion >= 1.019005
        ? "$NginxBinary -e $ErrLogFile -p $ServRoot/ -c $ConfFile > /dev/null"
        : "$NginxBinary -p $ServRoot/ -c $ConfFile > /dev/null";

    if (defined $ENV{TEST_NGINX_LD_PRELOAD}) {
        my $preload = defined $ENV{LD_PRELOAD}
            ? "$ENV{TEST_NGINX_LD_PRELOAD} $ENV{LD_PRELOAD}"
            : $ENV{TEST_NGINX_LD_PRELOAD};
        $cmd = qq{LD_PRELOAD="$preload" $cmd};
    }

    if (defined $block->suppress_stderr) {
        $cmd .= " 2> /dev/null";
    }

    if ($use_valgrind) {
        if ($use_valgrind =~ /^\d+$/) {
            my $opts = "--tool=memcheck --leak-check=full "
                       . "--keep-debuginfo=yes --show-possibly-lost=no";

            if ($ValgrindExitOnFirstErr) {
                my $help = `valgrind --help 2>&1`;
                if ($help =~ /exit-on-first-error/) {
                    $opts .= " --exit-on-first-error=yes --error-exitcode=1";
                } else {
                    warn "WARNING: valgrind does not support "
                         . "--exit-on-first-error option\n";
                }
            }

            my $supp = -f 'valgrind.suppress'
                ? ' --suppressions=valgrind.suppress' : '';
            $cmd = "valgrind --num-callers=100 -q $opts "
                   . "--gen-suppressions=all$supp $cmd";

        } else {
            # any other value is taken as the valgrind options themselves
            $cmd = "valgrind -q $use_valgrind $cmd";
        }
    }

    return $cmd;
}

# Runs the (daemonising) start command once.  Returns a hash describing how
# it ended, as the must_die checks need it.
sub start_nginx_daemon ($) {
    my $cmd = shift;

    warn "command: $cmd\n" if $Verbose;

    system($cmd);
    my $status = $?;

    my %r = (status => $status);

    if ($status == -1) {
        $r{exec_failed} = 1;

    } else {
        $r{exit_code} = $status >> 8;
        $r{coredump} = $status & 128;
    }

    return \%r;
}

# Valgrind mode: nginx runs with "daemon off" as our child, in its own
# process group, so that it can be stopped (and reaped) after each block.
sub start_nginx_foreground ($) {
    my $cmd = shift;

    my $pid = fork();
    if (!defined $pid) {
        bail_out("fork() failed: $!");
    }

    if ($pid == 0) {
        setpgrp(0, 0);
        Test::More->builder->no_ending(1);
        $Test::Nginx::Lite::Server::InSubprocess = 1;
        exec "exec $cmd" or POSIX::_exit(127);
    }

    warn "started nginx in the foreground, pid $pid: $cmd\n" if $Verbose;

    $ChildPid = $pid;
    sleep $TestNginxSleep;
}

our $InSubprocess;

sub get_pid_from_pidfile ($) {
    my $name = shift;

    open my $in, '<', $PidFile
        or bail_out("$name - Failed to open the pid file $PidFile for "
                    . "reading: $!");
    my $pid = do { local $/; <$in> };
    close $in;

    chomp $pid if defined $pid;
    return $pid;
}

# For TEST_NGINX_IGNORE_MISSING_DIRECTIVES: the unknown directive that
# made nginx refuse to start, if that was the reason.
sub missing_directive_in_error_log () {
    open my $in, '<', $ErrLogFile
        or bail_out("check_if_missing_directives: Cannot open $ErrLogFile "
                    . "for reading: $!\n");

    while (<$in>) {
        if (/\[emerg\] \S+?: unknown directive "([^"]+)"/) {
            close $in;
            return $1;
        }
    }

    close $in;
    return 0;
}

# --------------------------------------------------------------------------
# Stopping nginx
# --------------------------------------------------------------------------

# Graceful stop as in the real module: QUIT (TERM with
# TEST_NGINX_FAST_SHUTDOWN), wait up to timeout(), then KILL; then a few
# TERMs for anything still alive, then KILL again.
sub kill_process ($$$) {
    my ($pid, $wait, $name) = @_;

    return unless defined $pid;

    if ($wait) {
        kill($ENV{TEST_NGINX_FAST_SHUTDOWN} ? SIGTERM : SIGQUIT, $pid);

        my $left = $Timeout;
        while ($left > 0 && is_running($pid)) {
            waitpid($pid, WNOHANG);
            sleep 0.05;
            $left -= 0.05;
        }

        if (is_running($pid)) {
            warn "$name - timeout when waiting for the process $pid to exit\n";
            _kill_hard($pid);
        }
    }

    my $step = $TestNginxSleep;
    for (1 .. 20) {
        waitpid($pid, WNOHANG);
        return if !is_running($pid);

        warn "WARNING: killing the child process $pid.\n" if $Verbose;
        kill(SIGTERM, $pid)
            or warn "WARNING: failed to send term signal to the child "
                    . "process with PID $pid.\n";

        $step *= 1.2;
        $step = 0.5 if $step > 0.5;
        sleep $step;
    }

    warn "$name - WARNING: killing the child process $pid with force...\n";
    _kill_hard($pid);
}

sub _kill_hard {
    my $pid = shift;

    if (getpgrp($pid) == $pid) {
        kill(SIGKILL, -$pid);   # the whole group: master and workers
        sleep 0.05;
    } else {
        kill(SIGKILL, $pid);
    }
    waitpid($pid, WNOHANG);
}

# Stops the nginx recorded in the pid file, if it is still running;
# otherwise just removes a stale pid file.
sub stop_nginx_from_pidfile ($) {
    my $name = shift;

    return unless -f $PidFile;

    my $pid = get_pid_from_pidfile($name);
    if (!defined $pid || $pid eq '') {
        return;
    }

    if (is_running($pid)) {
        kill_process($pid, 1, $name);

    } elsif (-f $PidFile) {
        unlink $PidFile
            or warn "WARNING: failed to remove pid file $PidFile\n";
    }
}

# Valgrind mode, end of each block: ask nginx (our child) to quit and wait
# for it, reaping it.  We wait longer than the real module (which sends
# QUIT for 0.3 s, then waits 1 s, then KILLs the group): under valgrind the
# leak check at exit can take seconds, and a KILL would lose the report
# this mode exists for.
sub stop_foreground_nginx ($) {
    my $name = shift;

    my $pid;
    if (-f $PidFile) {
        $pid = get_pid_from_pidfile($name);
    }
    $pid = $ChildPid if !$pid;
    return unless $pid;

    if (is_running($pid)) {
        warn "sending QUIT to nginx $pid\n" if $Verbose;
        kill(SIGQUIT, $pid);

        my $left = $Timeout > 30 ? $Timeout : 30;
        while ($left > 0 && is_running($pid)) {
            waitpid($pid, WNOHANG);
            sleep 0.05;
            $left -= 0.05;
        }

        if (is_running($pid)) {
            warn "$name - timeout when waiting for the process $pid to exit\n";
            kill(SIGKILL, -$pid);
            kill(SIGKILL, $pid);
            waitpid($pid, 0);
        }
    }

    warn "nginx $pid has exited\n" if $Verbose && !is_running($pid);

    if (defined $ChildPid) {
        waitpid($ChildPid, WNOHANG);
        undef $ChildPid if !is_running($ChildPid);
    }

    if (-f $PidFile && !unlink($PidFile) && -f $PidFile) {
        bail_out("Failed to remove pid file $PidFile: $!\n");
    }
}

# --------------------------------------------------------------------------
# Logs
# --------------------------------------------------------------------------

# The error-log lines written since the previous call (or all of them
# with check_accum_error_log).  The short sleep first lets log-phase
# messages, written after nginx closed the connection, reach the file.
sub error_log_data () {
    sleep $TestNginxSleep * 3;

    open my $in, '<', $ErrLogFile or return undef;

    if (!$CheckAccumErrLog && $ErrLogFilePos > 0) {
        seek $in, $ErrLogFilePos, 0;
    }

    my @lines = <$in>;

    if (!$CheckAccumErrLog) {
        $ErrLogFilePos = tell($in);
    }

    close $in;
    return \@lines;
}

# The whole access log (the real module never keeps a position for it).
sub access_log_data () {
    sleep $TestNginxSleep * 3;

    open my $in, '<', $AccLogFile
        or die "open $AccLogFile failed: $!";
    my @lines = <$in>;
    close $in;

    return \@lines;
}

1;
