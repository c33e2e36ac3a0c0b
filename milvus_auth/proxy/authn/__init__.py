"""Who is calling: headers, the credential cache, single-flight verification, rate limits,
the auth check at the edge and the `Identity` it hands inward."""
