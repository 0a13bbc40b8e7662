"""ConsisID on CogVideoX-5B-I2V: face latent on channels (global), LFE + perceiver cross-attention (local)."""
