package wecom_test

import (
	"fmt"

	"github.com/wxhub/wxhub/wecom"
)

// A callback handler verifies and decrypts WeChat's POST, then parses the plain XML.
// The values are WeCom's published sample.
func ExampleCrypter_Decrypt() {
	c, err := wecom.NewCrypter("QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wx5823bf96d3bd56c7")
	if err != nil {
		panic(err)
	}
	body := []byte(`<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><Encrypt><![CDATA[RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==]]></Encrypt><AgentID><![CDATA[218]]></AgentID></xml>`)
	plain, err := c.Decrypt("477715d11cdb4164915debcba66cb864d751f3e6", "1409659813", "1372623149", body)
	if err != nil {
		panic(err)
	}
	ev, err := wecom.ParseInbound(plain)
	if err != nil {
		panic(err)
	}
	fmt.Println(wecom.EventType(ev), ev.User, ev.Content, wecom.DedupKey(ev, plain))
	// Output: text mycreate hello 4561255354251345929
}
