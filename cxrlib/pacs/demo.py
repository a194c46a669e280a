"""Demo studies for a test PACS: committed samples as CR chest X-rays of an obviously synthetic
patient (no real name, ID or birth date), one study a day over the last days.

CR (Computed Radiography Image Storage) is the plainest X-ray IOD: with 8-bit MONOCHROME2
pixels and the modules below it passes ``dciodvfy`` without errors.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ComputedRadiographyImageStorage, ExplicitVRLittleEndian, generate_uid

from cxrlib.core.settings import SAMPLES_DIR
from cxrlib.io.decode import decode_image
from cxrlib.pacs.client import PacsClient

#: (sample file, view position): adults PA, the paediatric (Kermany) films AP.
DEMO_SAMPLES = (
    ("covid_cxnet_265.jpg", "PA"),
    ("normal_nih_00002576_008.jpg", "PA"),
    ("pneumonia_nih_00001200_000.jpg", "PA"),
    ("normal_kermany_tr_IM-0675-0001.jpg", "AP"),
    ("pneumonia_kermany_tr_person1180_virus_2011.jpg", "AP"),
    ("normal_nih_00003353_006.jpg", "PA"),
)
DEMO_PATIENT_NAME = "DEMO^SYNTHETIC^CXRLENS"


def demo_dataset(sample: str, view: str, number: int, when: datetime) -> Dataset:
    """One CR instance in a new study, from ``samples/<sample>``; ``number`` (1, 2, ...)
    numbers the synthetic patient, accession and study."""
    pixels = decode_image((SAMPLES_DIR / sample).read_bytes(), sample).pixels
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ComputedRadiographyImageStorage
    ds.SOPClassUID = ComputedRadiographyImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.preamble = b"\0" * 128
    # Patient: synthetic, no birth date or sex (type 2: present, empty).
    ds.PatientName = DEMO_PATIENT_NAME
    ds.PatientID = f"DEMO-{number:04d}"
    ds.PatientBirthDate = ds.PatientSex = ""
    # General Study.
    ds.StudyInstanceUID = generate_uid()
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = when.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = when.strftime("%H%M%S")
    ds.AccessionNumber = f"DEMO{number:04d}"
    ds.StudyID = str(number)
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "DEMO chest X-ray (synthetic)"
    # General Series + CR Series.
    ds.Modality = "CR"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 1
    ds.SeriesDescription = f"Chest {view}"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = view
    # General Equipment + General Image.
    ds.Manufacturer = "CXR Lens demo"
    ds.InstanceNumber = 1
    ds.PatientOrientation = ["L", "F"]
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.ImageComments = f"Made from samples/{sample} (see samples/PROVENANCE.md); not a patient."
    ds.BurnedInAnnotation = "NO"
    # The samples are JPEGs: the pixels were lossy-compressed once.
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionMethod = "ISO_10918_1"
    # Image Pixel: 8-bit grayscale, uncompressed.
    ds.set_pixel_data(pixels, "MONOCHROME2", 8)
    # VOI LUT: the full 8-bit range, so a viewer shows the sample as it is.
    ds.WindowCenter, ds.WindowWidth = 128, 256
    return ds


def demo_datasets(today: date | None = None) -> list[Dataset]:
    """The demo studies, one a day: the first dated ``today`` (default: today), each next one
    a day earlier; fresh UIDs on every call."""
    start = datetime.combine(today or date.today(), datetime.min.time()).replace(hour=9)
    return [
        demo_dataset(sample, view, i + 1, start - timedelta(days=i, minutes=-7 * i))
        for i, (sample, view) in enumerate(DEMO_SAMPLES)
    ]


def load_demo(client: PacsClient) -> int:
    """Stores fresh demo studies in the PACS; returns how many instances it stored."""
    datasets = demo_datasets()
    client.store(datasets)
    return len(datasets)
