"""The bundled CT is offered in Slicer's Sample Data module with a checksum that matches the file."""
import hashlib
import urllib.request

from SurgicalAICore.sample_data import SAMPLE_CT_SHA256, register_sample_data


def test_sample_ct_registration_points_at_the_bundled_file_with_its_sha256():
    calls = []
    arguments = register_sample_data(lambda **kwargs: calls.append(kwargs))
    assert calls == [arguments]
    with urllib.request.urlopen(arguments["uris"]) as stream:  # SampleData fetches with urllib: file:// works
        data = stream.read()
    assert hashlib.sha256(data).hexdigest() == SAMPLE_CT_SHA256
    assert arguments["checksums"] == f"SHA256:{SAMPLE_CT_SHA256}"
