package clientauth_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/openmimi/mimi/client/remote/clientauth"
	clientv1 "github.com/openmimi/mimi/gen/mimi/client/v1"
	"github.com/openmimi/mimi/mls/cipher"
)

const (
	proc = "/mimi.client.v1.ClientService/Update"
	cl   = "mimi://a.example/d/alice1"
)

func key(t testing.TB, id cipher.SuiteID) (priv, pub []byte) {
	t.Helper()
	s, err := cipher.Lookup(id)
	if err != nil {
		t.Fatal(err)
	}
	priv, pub, err = s.GenerateSignatureKey()
	if err != nil {
		t.Fatal(err)
	}
	return priv, pub
}

// TestSignVerify: a signature verifies for every suite, and changing any
// signed input (procedure, client, suite, timestamp, request) or the key
// breaks it.
func TestSignVerify(t *testing.T) {
	for _, id := range []cipher.SuiteID{1, 2, 3, 5, 7} {
		t.Run(id.String(), func(t *testing.T) {
			priv, pub := key(t, id)
			_, otherPub := key(t, id)
			req := []byte("request")
			a, err := clientauth.Sign(priv, id, proc, cl, 1700000000000, req)
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := clientauth.Parse(a.String())
			if err != nil {
				t.Fatal(err)
			}
			d, err := parsed.Verify(pub, proc, req)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := clientauth.Digest(proc, cl, id, 1700000000000, req)
			if string(d) != string(want) {
				t.Fatal("digest differs")
			}
			mut := []struct {
				name string
				f    func(a clientauth.Auth) (clientauth.Auth, []byte, string, []byte)
			}{
				{"procedure", func(a clientauth.Auth) (clientauth.Auth, []byte, string, []byte) {
					return a, pub, "/mimi.client.v1.ClientService/Ack", req
				}},
				{"request", func(a clientauth.Auth) (clientauth.Auth, []byte, string, []byte) {
					return a, pub, proc, []byte("requesT")
				}},
				{"client", func(a clientauth.Auth) (clientauth.Auth, []byte, string, []byte) {
					a.Client = "mimi://a.example/d/alice2"
					return a, pub, proc, req
				}},
				{"timestamp", func(a clientauth.Auth) (clientauth.Auth, []byte, string, []byte) {
					a.Timestamp++
					return a, pub, proc, req
				}},
				{"key", func(a clientauth.Auth) (clientauth.Auth, []byte, string, []byte) { return a, otherPub, proc, req }},
				{"signature", func(a clientauth.Auth) (clientauth.Auth, []byte, string, []byte) {
					a.Signature = append([]byte{}, a.Signature...)
					a.Signature[0] ^= 1
					return a, pub, proc, req
				}},
			}
			for _, m := range mut {
				a2, k, p, r := m.f(*parsed)
				if _, err := a2.Verify(k, p, r); !errors.Is(err, clientauth.ErrBadSignature) {
					t.Errorf("%s changed: %v", m.name, err)
				}
			}
		})
	}
}

// TestParse: the header grammar.
func TestParse(t *testing.T) {
	good := "mimi://a.example/d/alice1 1 1700000000000 AAEC"
	a, err := clientauth.Parse(good)
	if err != nil || a.Client != cl || a.Suite != 1 || a.Timestamp != 1700000000000 || string(a.Signature) != "\x00\x01\x02" {
		t.Fatalf("%+v %v", a, err)
	}
	if a.String() != good {
		t.Fatalf("round trip %q", a.String())
	}
	bad := []string{
		"",
		"mimi://a.example/d/alice1 1 1700000000000",
		"mimi://a.example/d/alice1 1 1700000000000 AAEC x",
		"mimi://a.example/d/alice1  1 1700000000000 AAEC",
		"mimi://a.example/u/alice 1 1700000000000 AAEC",
		"https://a.example/d/alice1 1 1700000000000 AAEC",
		"mimi://a.example/d/alice1 01 1700000000000 AAEC",
		"mimi://a.example/d/alice1 70000 1700000000000 AAEC",
		"mimi://a.example/d/alice1 -1 1700000000000 AAEC",
		"mimi://a.example/d/alice1 1 01700000000000 AAEC",
		"mimi://a.example/d/alice1 1 99999999999999999999999 AAEC",
		"mimi://a.example/d/alice1 1 1700000000000 AAEC==",
		"mimi://a.example/d/alice1 1 1700000000000 AA+C",
		"mimi://a.example/d/alice1 1 1700000000000 ",
		"mimi://a.example/d/alice1 1 1700000000000 " + strings.Repeat("A", clientauth.MaxHeaderLength),
	}
	for _, v := range bad {
		if _, err := clientauth.Parse(v); !errors.Is(err, clientauth.ErrMalformed) {
			t.Errorf("Parse(%.60q) = %v", v, err)
		}
	}
	// An unsupported suite parses but does not verify.
	a, err = clientauth.Parse("mimi://a.example/d/alice1 65000 1 AAEC")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Verify([]byte{1}, proc, nil); !errors.Is(err, clientauth.ErrUnsupportedSuite) {
		t.Fatalf("suite 65000: %v", err)
	}
}

// TestRequestBytes: the encoding is the deterministic protobuf encoding,
// the same for equal messages.
func TestRequestBytes(t *testing.T) {
	a, err := clientauth.RequestBytes(&clientv1.UpdateRequest{Room: "mimi://a.example/r/x", Body: []byte{1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := clientauth.RequestBytes(&clientv1.UpdateRequest{Body: []byte{1, 2}, Room: "mimi://a.example/r/x"})
	if string(a) != string(b) || len(a) == 0 {
		t.Fatalf("%x / %x", a, b)
	}
	// Fields in field-number order: room (1) before body (2).
	if a[0] != 0x0a {
		t.Fatalf("first tag %x", a[0])
	}
}

// FuzzParse: Parse never panics and what it accepts formats back to a
// value it parses the same.
func FuzzParse(f *testing.F) {
	f.Add("mimi://a.example/d/alice1 1 1700000000000 AAEC")
	f.Add("mimi://a.example/d/x 7 0 _-_-")
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		a, err := clientauth.Parse(v)
		if err != nil {
			return
		}
		b, err := clientauth.Parse(a.String())
		if err != nil || b.Client != a.Client || b.Suite != a.Suite || b.Timestamp != a.Timestamp || string(b.Signature) != string(a.Signature) {
			t.Fatalf("%q -> %+v -> %v", v, a, err)
		}
	})
}
