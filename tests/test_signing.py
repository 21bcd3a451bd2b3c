from trendio_cli.api.signing import sign, string_to_sign

PATH = "/affiliate_seller/202405/target_collaborations"
QUERY = {"app_key": "k1", "timestamp": "1700000000", "shop_cipher": "c1"}


def test_string_to_sign_matches_the_documented_worked_value():
    expected = (
        "s3cr3t/affiliate_seller/202405/target_collaborations"
        + "app_keyk1shop_cipherc1timestamp1700000000{}"
        + "s3cr3t"
    )
    assert string_to_sign("s3cr3t", PATH, QUERY, b"{}") == expected.encode()


def test_sign_is_lowercase_hex_hmac_sha256_of_the_wrapped_string():
    import hashlib
    import hmac

    wrapped = string_to_sign("s3cr3t", PATH, QUERY, b"{}")
    expected = hmac.new(b"s3cr3t", wrapped, hashlib.sha256).hexdigest()
    got = sign("s3cr3t", PATH, QUERY, b"{}")
    assert got == expected
    assert got == got.lower() and len(got) == 64


def test_sign_and_access_token_are_left_out_and_keys_sorted():
    base = sign("s", PATH, QUERY, b"{}")
    assert sign("s", PATH, {**QUERY, "sign": "zzz", "access_token": "t"}, b"{}") == base
    assert sign("s", PATH, dict(reversed(list(QUERY.items()))), b"{}") == base
    assert sign("s", PATH, {**QUERY, "page_size": "20"}, b"{}") != base
    assert sign("s", PATH, QUERY, b'{"a":1}') != base
