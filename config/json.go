package config

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"
)

// The JSON form of the model is the `--dump` output. encoding/json would print time.Duration as
// nanoseconds; this small reflective encoder prints durations as strings ("3s", "1m0s") and
// otherwise follows encoding/json (field order, json tags, TextMarshaler, omitempty).

// MarshalJSON implements json.Marshaler.
func (c Config) MarshalJSON() ([]byte, error) { return marshalModel(c) }

// MarshalJSON implements json.Marshaler.
func (vs VirtualServer) MarshalJSON() ([]byte, error) { return marshalModel(vs) }

// MarshalJSON implements json.Marshaler.
func (in Instance) MarshalJSON() ([]byte, error) { return marshalModel(in) }

// MarshalJSON implements json.Marshaler.
func (s Script) MarshalJSON() ([]byte, error) { return marshalModel(s) }

// MarshalJSON implements json.Marshaler.
func (rs RealServer) MarshalJSON() ([]byte, error) { return marshalModel(rs) }

// MarshalJSON implements json.Marshaler.
func (ck Checker) MarshalJSON() ([]byte, error) { return marshalModel(ck) }

// MarshalJSON implements json.Marshaler.
func (g Global) MarshalJSON() ([]byte, error) { return marshalModel(g) }

func marshalModel(v any) ([]byte, error) {
	var buf bytes.Buffer
	if err := encodeValue(&buf, reflect.ValueOf(v)); err != nil {
		return nil, fmt.Errorf("config: marshal json: %w", err)
	}
	return buf.Bytes(), nil
}

// encodeValue writes v. It walks structs itself rather than calling their MarshalJSON, which
// would recurse.
func encodeValue(buf *bytes.Buffer, v reflect.Value) error {
	if !v.IsValid() {
		buf.WriteString("null")
		return nil
	}
	if v.Type() == reflect.TypeFor[time.Duration]() {
		return writeJSON(buf, time.Duration(v.Int()).String())
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			buf.WriteString("null")
			return nil
		}
		return encodeValue(buf, v.Elem())
	case reflect.Struct:
		if v.Type().Implements(reflect.TypeFor[encoding.TextMarshaler]()) {
			return writeJSON(buf, v.Interface())
		}
		return encodeStruct(buf, v)
	case reflect.Slice:
		if v.IsNil() {
			buf.WriteString("[]")
			return nil
		}
		buf.WriteByte('[')
		for i := range v.Len() {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := encodeValue(buf, v.Index(i)); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
		return nil
	case reflect.Map:
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
		buf.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeJSON(buf, fmt.Sprint(k)); err != nil {
				return err
			}
			buf.WriteByte(':')
			if err := encodeValue(buf, v.MapIndex(k)); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
		return nil
	default:
		return writeJSON(buf, v.Interface())
	}
}

func encodeStruct(buf *bytes.Buffer, v reflect.Value) error {
	buf.WriteByte('{')
	first := true
	if err := encodeFields(buf, v, &first); err != nil {
		return err
	}
	buf.WriteByte('}')
	return nil
}

// encodeFields writes v's fields; an embedded struct without a json name is inlined, as
// encoding/json does.
func encodeFields(buf *bytes.Buffer, v reflect.Value, first *bool) error {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if f.Anonymous && tag == "" && f.Type.Kind() == reflect.Struct {
			if err := encodeFields(buf, v.Field(i), first); err != nil {
				return err
			}
			continue
		}
		if !f.IsExported() || tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		fv := v.Field(i)
		if strings.Contains(opts, "omitempty") && fv.IsZero() {
			continue
		}
		if !*first {
			buf.WriteByte(',')
		}
		*first = false
		if err := writeJSON(buf, name); err != nil {
			return err
		}
		buf.WriteByte(':')
		if err := encodeValue(buf, fv); err != nil {
			return err
		}
	}
	return nil
}

func writeJSON(buf *bytes.Buffer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	buf.Write(b)
	return nil
}
