# Authenticated mode remembers which identity a verified username has
# (passkey_identity_cache): the next bind makes one API call, the job's
# POST.  A job POST answered 404 (the identity was deleted) forgets it and
# the bind asks the API again; "off" asks every time; sign-up mode neither
# reads nor writes it; the Redis entry is the identity id under a hashed
# key, with the configured TTL.
#
# "--- api_routes": the routes the stand-in saw for the block's tenant, in
# order, checked after the block's last request.

use t::Passkey;
use Test::Nginx::Socket 'no_plan';
use HTTP::Tiny;
use JSON::PP ();

repeat_each(1);
no_shuffle();

# authenticated mode, the user from a trusted upstream's header
add_block_preprocessor(sub {
    my $block = shift;

    # whichever preprocessor runs first (t::Passkey's adds /fake/)
    return if ($block->config // '') =~ /passkey_bind/;

    $block->set_value('config', ($block->config // '') . <<'CONF');
    location = /passkey/bind {
        passkey_bind_mode authenticated;
        passkey_username  $http_x_user;
        passkey_duplicate_window off;
        passkey_bind;
    }
CONF
});

sub fake {
    my ($block, $method, $path) = @_;

    my $tenant = block_tenant($block->seq_num);
    my $sep = $path =~ /\?/ ? '&' : '?';
    my $res = HTTP::Tiny->new(timeout => 10)->request($method,
        "http://127.0.0.1:$ENV{TEST_NGINX_BI_PORT}/__fake/$path${sep}"
        . "tenant=$tenant");
    die "stand-in $method $path: $res->{status}" unless $res->{success};

    return JSON::PP::decode_json($res->{content});
}

sub bind_as {
    my ($user) = @_;

    my $res = HTTP::Tiny->new(timeout => 10)->post(
        "http://127.0.0.1:$ENV{TEST_NGINX_SERVER_PORT}/passkey/bind",
        { headers => { 'Content-Type' => 'application/json',
                       'X-User' => $user },
          content => '{}' });
    sdk_record_link(sdk_links_in($res->{content}));

    return ($res->{status}, eval { JSON::PP::decode_json($res->{content}) });
}

# the entries remembered under the block's prefix: { key => [id, ttl] }
sub remembered {
    my ($block) = @_;

    my $keys = redis_cmd('KEYS', block_prefix($block->seq_num) . 'identity:*');

    return { map { $_ => [redis_cmd('GET', $_), redis_cmd('TTL', $_)] }
             @$keys };
}

add_response_body_check(sub {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;

    my $want = $block->api_routes;
    return if $dry_run || !defined $want;

    my $reqs = $block->request;
    return unless $req_idx == (ref $reqs eq 'ARRAY' ? $#$reqs : 0);

    my $got = join ' ', map { $_->{route} }
              @{ fake($block, 'GET', 'requests')->{requests} };

    $want =~ s/\s+/ /g;
    $want =~ s/^ | $//g;

    Test::More::is($got, $want, $block->name . " - the API calls");
});

run_flows({
    'the entry is the identity id, under a hashed key, for its TTL' => sub {
        my ($block, $name) = @_;

        my ($status, $job) = bind_as('alice');
        my $entries = remembered($block);
        my @keys = keys %$entries;

        Test::More::is(scalar @keys, 1, "$name - one entry");
        Test::More::like($keys[0], qr/:identity:[0-9a-f]{64}\z/,
                         "$name - the key is a digest, not the name");
        Test::More::is($entries->{$keys[0]}[0], $job->{identity_id},
                       "$name - the value is the job's identity");
        Test::More::ok($entries->{$keys[0]}[1] > 0
                       && $entries->{$keys[0]}[1] <= 600,
                       "$name - the TTL is passkey_identity_cache's "
                       . "($entries->{$keys[0]}[1] s)");

        # another spelling is another key: never a hit for "Alice"
        bind_as('Alice');
        Test::More::is(scalar keys %{ remembered($block) }, 1,
                       "$name - a name refused for its spelling is not "
                       . "remembered");
    },

    'an identity deleted in the console is found missing and created again'
    => sub {
        my ($block, $name) = @_;

        my ($s1, $first) = bind_as('bob');
        fake($block, 'DELETE', "identities/$first->{identity_id}");
        my ($s2, $second) = bind_as('bob');
        my ($s3, $third) = bind_as('bob');

        Test::More::is("$s1 $s2 $s3", '200 200 200', "$name - three binds");
        Test::More::isnt($second->{identity_id}, $first->{identity_id},
                         "$name - the second bind is for a new identity");
        Test::More::is($third->{identity_id}, $second->{identity_id},
                       "$name - which the third remembers");

        my $routes = join ' ', map { $_->{route} . ($_->{status} // '-') }
                     @{ fake($block, 'GET', 'requests')->{requests} };

        Test::More::is($routes,
                       'token200 list_identities200 create_identity200 '
                       . 'create_job200 create_job404 list_identities200 '
                       . 'create_identity200 create_job200 create_job200',
                       "$name - the 404, then a lookup, a create, a job; "
                       . "then one call");
    },
});

run_tests();

__DATA__

=== TEST 1: a known user costs one API call
--- more_headers
Content-Type: application/json
X-User: alice
--- request eval
["POST /passkey/bind\n{}", "POST /passkey/bind\n{}", "POST /passkey/bind\n{}"]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
[qr/"credential_binding_link":"http/, qr/"credential_binding_link":"http/,
 qr/"credential_binding_link":"http/]
--- api_routes
token list_identities create_identity create_job create_job create_job



=== TEST 2: a remembered identity that is gone (404) is asked for again
--- more_headers
Content-Type: application/json
X-User: alice
--- request eval
["POST /passkey/bind\n{}",
 "POST /fake/faults\n{\"route\":\"create_job\",\"type\":\"status\",\"status\":404}",
 "POST /passkey/bind\n{}", "POST /passkey/bind\n{}"]
--- error_code eval
[200, 200, 200, 200]
--- response_body_like eval
[qr/"identity_id"/, qr/create_job/, qr/"identity_id"/, qr/"identity_id"/]
--- api_routes
token list_identities create_identity create_job
create_job list_identities create_job
create_job
--- block_error_log eval
[qr/\[info\] .*passkey: remembered identity [0-9a-f]{16} is gone, asking the API/]



=== TEST 3: passkey_identity_cache off asks the API every time
--- http_config
    passkey_identity_cache off;
--- more_headers
Content-Type: application/json
X-User: alice
--- request eval
["POST /passkey/bind\n{}", "POST /passkey/bind\n{}"]
--- error_code eval
[200, 200]
--- response_body_like eval
[qr/"identity_id"/, qr/"identity_id"/]
--- api_routes
token list_identities create_identity create_job list_identities create_job



=== TEST 4: sign-up mode creates first and remembers nothing
--- config
    location = /passkey/bind {
        passkey_duplicate_window off;
        passkey_bind;
    }
--- more_headers
Content-Type: application/json
--- request eval
["POST /passkey/bind\n{\"username\":\"carol\"}",
 "POST /passkey/bind\n{\"username\":\"carol\"}"]
--- error_code eval
[200, 202]
--- response_body_like eval
[qr/"identity_id"/, qr/"state":"accepted"/]
--- api_routes
token create_identity create_job create_identity list_identities



=== TEST 5: the entry is the identity id, under a hashed key, for its TTL
--- http_config
    passkey_identity_cache 10m;
--- request
GET /fake/stats
--- response_body_like: "create_job":0,



=== TEST 6: an identity deleted in the console is found missing and created again
--- request
GET /fake/stats
--- response_body_like: "create_job":0,
