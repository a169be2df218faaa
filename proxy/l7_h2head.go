package proxy

import (
	"errors"
	"strings"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2HeadReader decodes the header blocks of a client connection: a HEADERS
// frame, then its CONTINUATION frames up to END_HEADERS, through the
// connection's HPACK decoder. It does what x/net's Framer does when its
// ReadMetaHeaders is set (readMetaFrame: the same field checks, the same
// header list budget and Truncated, the same errors), into one frame record
// and one field list kept from block to block: readMetaFrame allocates a
// frame, a closure and its state, and a field list grown field by field
// for every block, most of the allocations of an HTTP/2 request. FuzzH2Head
// holds the two to the same fields and errors on any input.
type h2HeadReader struct {
	fr   *http2.Framer // its ReadMetaHeaders stays nil: HEADERS come whole to read
	dec  *hpack.Decoder
	max  uint32                 // the header list budget (SETTINGS_MAX_HEADER_LIST_SIZE)
	mh   http2.MetaHeadersFrame // the block being read; valid until the next read
	left struct{ headers, trailers uint32 }
	// The first invalid field, which ends the block; sawRegular: a regular
	// field came (a pseudo-field after one is invalid).
	invalid    error
	sawRegular bool
}

// keepFields is the most field places a reader keeps between blocks.
const keepFields = 64

var (
	errH2FieldName     = errors.New("invalid header field name")
	errH2FieldValue    = errors.New("invalid header field value")
	errH2PseudoLate    = errors.New("pseudo header field after regular")
	errH2PseudoUnknown = errors.New("invalid pseudo header field")
	errH2PseudoTwice   = errors.New("duplicate pseudo header field")
	errH2PseudoMixed   = errors.New("request and response pseudo header fields mixed")
)

func newH2HeadReader(fr *http2.Framer, tableSize, maxList uint32) *h2HeadReader {
	r := &h2HeadReader{fr: fr, dec: hpack.NewDecoder(tableSize, nil), max: maxList}
	if r.max == 0 {
		r.max = 16 << 20 // the Framer's default
	}
	r.dec.SetMaxStringLength(int(r.max))
	r.dec.SetEmitFunc(r.emit)
	return r
}

// read decodes the block hf begins. A ConnectionError or StreamError is the
// one readMetaFrame would return; the frame is valid until the next read.
func (r *h2HeadReader) read(hf *http2.HeadersFrame) (*http2.MetaHeadersFrame, error) {
	mh := &r.mh
	if cap(mh.Fields) > keepFields {
		mh.Fields = nil
	}
	mh.HeadersFrame, mh.Fields, mh.Truncated = hf, mh.Fields[:0], false
	r.left.headers, r.left.trailers = r.max, r.max
	r.invalid, r.sawRegular = nil, false
	r.dec.SetEmitEnabled(true)
	frag, ended := hf.HeaderBlockFragment(), hf.HeadersEnded()
	for {
		// A fragment far over what the budget still allows, or one after
		// an invalid field (whose size was not counted), ends the
		// connection rather than being decoded for nothing.
		if int64(len(frag)) > 2*int64(r.left.headers+r.left.trailers) || r.invalid != nil {
			return mh, http2.ConnectionError(http2.ErrCodeProtocol)
		}
		if _, err := r.dec.Write(frag); err != nil {
			return mh, http2.ConnectionError(http2.ErrCodeCompression)
		}
		if ended {
			break
		}
		f, err := r.fr.ReadFrame()
		if err != nil {
			return nil, err
		}
		cf := f.(*http2.ContinuationFrame) // the Framer checks the frame order
		frag, ended = cf.HeaderBlockFragment(), cf.HeadersEnded()
	}
	if err := r.dec.Close(); err != nil {
		return mh, http2.ConnectionError(http2.ErrCodeCompression)
	}
	if r.invalid != nil {
		return nil, http2.StreamError{StreamID: hf.StreamID, Code: http2.ErrCodeProtocol, Cause: r.invalid}
	}
	if err := checkPseudos(mh.PseudoFields()); err != nil {
		return nil, http2.StreamError{StreamID: hf.StreamID, Code: http2.ErrCodeProtocol, Cause: err}
	}
	return mh, nil
}

// emit takes one decoded field: checked, counted against the budget (a
// trailer field by the fields it announces), kept.
func (r *h2HeadReader) emit(hf hpack.HeaderField) {
	if !httpguts.ValidHeaderFieldValue(hf.Value) {
		r.invalid = errH2FieldValue
	}
	if strings.HasPrefix(hf.Name, ":") {
		if r.sawRegular {
			r.invalid = errH2PseudoLate
		}
	} else {
		r.sawRegular = true
		if !validFieldName(hf.Name) {
			r.invalid = errH2FieldName
		}
	}
	if r.invalid != nil {
		r.dec.SetEmitEnabled(false)
		return
	}
	left, size := &r.left.headers, hf.Size()
	if hf.Name == "trailer" {
		n := strings.Count(hf.Value, ",") + 1
		left, size = &r.left.trailers, uint32(len(hf.Value)-n+1)+uint32(n)*hpack.HeaderField{}.Size()
	}
	if size > *left {
		r.dec.SetEmitEnabled(false)
		r.mh.Truncated = true
		r.left.headers, r.left.trailers = 0, 0
		return
	}
	*left -= size
	r.mh.Fields = append(r.mh.Fields, hf)
}

// validFieldName: a token in lower case (RFC 9113 §8.2.1).
func validFieldName(name string) bool {
	if name == "" {
		return false
	}
	for _, c := range name {
		if !httpguts.IsTokenRune(c) || 'A' <= c && c <= 'Z' {
			return false
		}
	}
	return true
}

// checkPseudos: known pseudo-fields, each once, not of both a request and a
// response.
func checkPseudos(pf []hpack.HeaderField) error {
	var request, response bool
	for i, f := range pf {
		switch f.Name {
		case ":method", ":path", ":scheme", ":authority", ":protocol":
			request = true
		case ":status":
			response = true
		default:
			return errH2PseudoUnknown
		}
		for _, g := range pf[:i] {
			if f.Name == g.Name {
				return errH2PseudoTwice
			}
		}
	}
	if request && response {
		return errH2PseudoMixed
	}
	return nil
}
