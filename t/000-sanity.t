# The module loads into Debian's nginx and a binding job is created end to
# end against the API stand-in and Redis.

use t::Passkey;
use Test::Nginx::Socket 'no_plan';

repeat_each(1);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: a RETURN binding job for a new user
--- config
    location = /passkey/bind {
        passkey_bind;
    }
--- request
POST /passkey/bind
{"username":"alice","email":"alice@example.com"}
--- more_headers
Content-Type: application/json
--- error_code: 200
--- response_headers
Content-Type: application/json
Cache-Control: no-store
Referrer-Policy: no-referrer
--- response_body_like eval
qr{^\{"job_id":"[0-9a-f]{16}","identity_id":"[0-9a-f]{16}","state":"LINK_SENT","expire_time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z","delivery_method":"RETURN","credential_binding_link":"http://127\.0\.0\.1:$ENV{TEST_NGINX_BI_AUTH_PORT}/v1/tenants/\w+/realms/r1/identities/[0-9a-f]{16}/credential-binding-jobs/[0-9a-f]{16}:invokeAuthenticator\?token=[\w-]{64}"\}$}
--- redis_job
username: ^alice$
identity_id: ^[0-9a-f]{16}$
delivery_method: ^RETURN$
state: ^LINK_SENT$
expire_time: ^\d{4}-\d\d-\d\dT
created_at: ^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$
ttl: 604000 604800
