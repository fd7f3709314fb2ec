package cipher

import "math/big"

// Field constants of edwards25519 (RFC 8032, Section 5.1).
var (
	ed25519P = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	ed25519D = func() *big.Int {
		// d = -121665 / 121666 mod p
		num := new(big.Int).Neg(big.NewInt(121665))
		inv := new(big.Int).ModInverse(big.NewInt(121666), ed25519P)
		d := num.Mul(num, inv)
		return d.Mod(d, ed25519P)
	}()
	ed25519PMinus1Half = new(big.Int).Rsh(new(big.Int).Sub(ed25519P, big.NewInt(1)), 1)
)

// ed25519PointValid reports whether the 32-byte encoding b decodes to a
// point of edwards25519 (RFC 8032, Section 5.1.3), accepting non-canonical
// y >= p like crypto/ed25519 does. It is only used on failure paths, so
// its math/big cost does not matter.
func ed25519PointValid(b []byte) bool {
	if len(b) != 32 {
		return false
	}
	le := make([]byte, 32)
	for i := range le {
		le[i] = b[31-i]
	}
	sign := le[0] >> 7
	le[0] &= 0x7f
	y := new(big.Int).SetBytes(le)
	y.Mod(y, ed25519P)
	p := ed25519P
	y2 := new(big.Int).Mul(y, y)
	y2.Mod(y2, p)
	u := new(big.Int).Sub(y2, big.NewInt(1)) // y^2 - 1
	u.Mod(u, p)
	v := new(big.Int).Mul(ed25519D, y2) // d y^2 + 1
	v.Add(v, big.NewInt(1))
	v.Mod(v, p)
	if v.Sign() == 0 {
		return false
	}
	x2 := new(big.Int).ModInverse(v, p)
	x2.Mul(x2, u)
	x2.Mod(x2, p)
	if x2.Sign() == 0 {
		return sign == 0 // x = 0 cannot carry a negative sign bit
	}
	// Euler's criterion: x2 is a square iff x2^((p-1)/2) == 1.
	return new(big.Int).Exp(x2, ed25519PMinus1Half, p).Cmp(big.NewInt(1)) == 0
}
