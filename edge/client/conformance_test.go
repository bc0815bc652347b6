package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/noonhq/noon/edge/frame"
	"github.com/noonhq/noon/idl/conformance"
	"github.com/noonhq/noon/idl/methods"
	"github.com/noonhq/noon/internal/thriftx"
)

// conformanceDir holds the golden vectors (see package conformance).
const conformanceDir = "../../idl/conformance"

func readVectors(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(conformanceDir, name))
	if err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("hex %q: %v", s, err)
	}
	return b
}

// TestConformanceFrames: every good frame encodes bit for bit and decodes
// (as a stream and as a WebSocket message) to its parts; every bad frame
// is rejected with bad_frame and the Go decoder's exact text.
func TestConformanceFrames(t *testing.T) {
	var f conformance.Frames
	readVectors(t, "frames.json", &f)
	if f.MaxFrame != frame.DefaultMaxFrame || f.MaxMethod != frame.DefaultMaxMethod || f.MaxErr != frame.DefaultMaxErr || f.MinFrame != frame.MinFrame {
		t.Errorf("limits %d/%d/%d/%d do not match the codec's", f.MaxFrame, f.MaxMethod, f.MaxErr, f.MinFrame)
	}
	kinds := map[string]int{}
	for _, v := range f.Vectors {
		kinds[v.Kind]++
		t.Run(v.Name, func(t *testing.T) {
			wireBytes := unhex(t, v.Hex)
			if v.Kind == conformance.KindBad {
				checkBadFrame(t, v, wireBytes)
				return
			}
			payload := unhex(t, *v.PayloadHex)
			var enc []byte
			var first string
			switch v.Kind {
			case conformance.KindRequest:
				first = *v.Method
				enc = frame.AppendRequest(nil, first, payload)
			case conformance.KindReply:
				first = *v.Err
				enc = frame.AppendResponse(nil, first, payload)
			case conformance.KindPush:
				first = "@" + *v.Event
				enc = frame.AppendPush(nil, *v.Event, payload)
			default:
				t.Fatalf("kind %q", v.Kind)
			}
			if *v.First != first {
				t.Errorf("first = %q, want %q", *v.First, first)
			}
			if !bytes.Equal(enc, wireBytes) {
				t.Errorf("encoded % x\nwant    % x", enc, wireBytes)
			}
			r := frame.NewReaderSize(bytes.NewReader(wireBytes), frame.Limits{}, 16)
			read, decode := r.ReadResponse, frame.DecodeResponseFrame
			if v.Kind == conformance.KindRequest {
				read, decode = r.ReadRequest, frame.DecodeRequestFrame
			}
			for how, dec := range map[string]func() ([]byte, []byte, error){
				"stream":  read,
				"message": func() ([]byte, []byte, error) { return decode(wireBytes, frame.Limits{}) },
			} {
				gotFirst, gotPayload, err := dec()
				if err != nil {
					t.Fatalf("%s: %v", how, err)
				}
				if string(gotFirst) != first || !bytes.Equal(gotPayload, payload) {
					t.Errorf("%s: decoded %q, % x", how, gotFirst, gotPayload)
				}
				if frame.IsPush(gotFirst) != (v.Kind == conformance.KindPush) {
					t.Errorf("%s: IsPush(%q) wrong", how, gotFirst)
				}
			}
		})
	}
	for _, k := range []string{conformance.KindRequest, conformance.KindReply, conformance.KindPush, conformance.KindBad} {
		if kinds[k] == 0 {
			t.Errorf("no %s vector", k)
		}
	}
}

func checkBadFrame(t *testing.T, v conformance.Frame, b []byte) {
	t.Helper()
	if v.Code != "bad_frame" {
		t.Errorf("code %q", v.Code)
	}
	check := func(how string, err error) {
		t.Helper()
		if !errors.Is(err, frame.ErrBadFrame) {
			t.Errorf("%s: err = %v, want a bad frame", how, err)
		} else if err.Error() != v.Error {
			t.Errorf("%s: err = %q, want %q", how, err, v.Error)
		}
	}
	decode := frame.DecodeResponseFrame
	if v.Shape == "request" {
		decode = frame.DecodeRequestFrame
	}
	_, _, err := decode(b, frame.Limits{})
	check("message", err)
	switch v.Scope {
	case conformance.ScopeFrame:
		// The client's reader (a fake broker sending b) must reject it too.
		r := frame.NewReader(bytes.NewReader(b), frame.Limits{})
		read := r.ReadResponse
		if v.Shape == "request" {
			read = r.ReadRequest
		}
		_, _, err := read()
		check("stream", err)
	case conformance.ScopeMessage:
	default:
		t.Errorf("scope %q", v.Scope)
	}
}

// TestConformanceThrift: every case of every method decodes to its JSON
// and its JSON encodes to the same bytes; every method of idl/methods has
// cases.
func TestConformanceThrift(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(conformanceDir, "thrift", "*.json"))
	seen := map[string]bool{}
	for _, file := range files {
		var tf conformance.ThriftFile
		readVectors(t, filepath.Join("thrift", filepath.Base(file)), &tf)
		for _, m := range tf.Methods {
			seen[m.Method] = true
			mt, ok := methods.Lookup(m.Method)
			if !ok {
				t.Errorf("%s: not in idl/methods", m.Method)
				continue
			}
			if len(m.Cases) < 2 {
				t.Errorf("%s: %d cases", m.Method, len(m.Cases))
			}
			for _, c := range m.Cases {
				t.Run(m.Method+"/"+c.Name, func(t *testing.T) {
					checkThrift(t, "request", mt.NewReq, c.Request, c.RequestHex)
					checkThrift(t, "reply", mt.NewReply, c.Reply, c.ReplyHex)
				})
			}
		}
	}
	for _, name := range methods.Names() {
		if !seen[name] {
			t.Errorf("%s has no conformance vectors", name)
		}
	}
}

func checkThrift(t *testing.T, what string, newT func() thrift.TStruct, js json.RawMessage, h string) {
	t.Helper()
	b := unhex(t, h)
	if newT == nil { // raw bytes
		var s string
		if err := json.Unmarshal(js, &s); err != nil || s != h {
			t.Errorf("%s: raw JSON %s, want %q", what, js, h)
		}
		return
	}
	dec := newT()
	if err := thriftx.Unmarshal(b, dec); err != nil {
		t.Fatalf("%s: decode: %v", what, err)
	}
	got, err := conformance.ToJSON(dec)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !jsonEqual(got, js) {
		t.Errorf("%s: decoded to %s\nwant %s", what, got, js)
	}
	enc := newT()
	if err := conformance.FromJSON(js, enc); err != nil {
		t.Fatalf("%s: from JSON: %v", what, err)
	}
	out, err := thriftx.Marshal(enc)
	if err != nil {
		t.Fatalf("%s: encode: %v", what, err)
	}
	if !bytes.Equal(out, b) {
		t.Errorf("%s: encoded %x\nwant    %x", what, out, b)
	}
}

func jsonEqual(a, b []byte) bool {
	var x, y bytes.Buffer
	if json.Compact(&x, a) != nil || json.Compact(&y, b) != nil {
		return false
	}
	return bytes.Equal(x.Bytes(), y.Bytes())
}

// TestConformanceBrokerList: FetchBrokerList and PickBroker pick what the
// vectors say, a Session tries the brokers in their order (the lost one
// last), and malformed bodies are rejected.
func TestConformanceBrokerList(t *testing.T) {
	var bl conformance.BrokerLists
	readVectors(t, "brokerlist.json", &bl)
	serve := func(t *testing.T, body string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(body))
		}))
		t.Cleanup(srv.Close)
		return srv.URL + "/brokerlist"
	}
	ctx := context.Background()
	for _, c := range bl.Valid {
		t.Run(c.Name, func(t *testing.T) {
			url := serve(t, c.Body)
			list, err := FetchBrokerList(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			pick, err := PickBroker(list)
			if c.Pick == "" {
				if !errors.Is(err, ErrNoBrokers) {
					t.Errorf("PickBroker = %q, %v; want ErrNoBrokers", pick, err)
				}
			} else if err != nil || pick != c.Pick {
				t.Errorf("PickBroker = %q, %v; want %q", pick, err, c.Pick)
			}
			s := &Session{opts: SessionOptions{BrokerList: url}}
			order, err := s.candidates(ctx, "")
			if len(c.Order) == 0 {
				if !errors.Is(err, ErrNoBrokers) {
					t.Errorf("candidates = %q, %v; want ErrNoBrokers", order, err)
				}
			} else if err != nil || !slices.Equal(order, c.Order) {
				t.Errorf("candidates = %q, %v; want %q", order, err, c.Order)
			}
			if c.Avoid != "" {
				order, err := s.candidates(ctx, c.Avoid)
				if err != nil || !slices.Equal(order, c.OrderAvoiding) {
					t.Errorf("candidates avoiding %s = %q, %v; want %q", c.Avoid, order, err, c.OrderAvoiding)
				}
			}
		})
	}
	for _, c := range bl.Malformed {
		t.Run(c.Name, func(t *testing.T) {
			if list, err := FetchBrokerList(ctx, serve(t, c.Body)); err == nil {
				t.Errorf("FetchBrokerList accepted %q: %v", c.Body, list)
			}
		})
	}
}
