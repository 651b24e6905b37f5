"""PET SUV: every rule of STANDARDS.md on synthetic pydicom headers, answers worked out by hand below."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydicom.dataset import Dataset

from multiscale.io import load
from multiscale.io.suv import SUVError, body_surface_area, suv_factor, suv_factors

from . import _dicom_synth as syn

LN2 = math.log(2.0)
F18 = 6586.2
W_G = 70000.0  # 70 kg
DOSE = 370e6  # Bq


def pet(**over) -> Dataset:
    """A BQML / START PET slice header: 70 kg, 1.75 m male, 370 MBq F-18 at 10:00, series at 11:00."""
    ds = Dataset()
    ds.Modality = "PT"
    ds.Units = "BQML"
    ds.DecayCorrection = "START"
    ds.PatientWeight = 70.0
    ds.PatientSize = 1.75
    ds.PatientSex = "M"
    ds.SeriesDate = "20200101"
    ds.SeriesTime = "110000"
    ds.AcquisitionDate = "20200101"
    ds.AcquisitionTime = "110000"
    ds.RescaleSlope = 1.0
    ds.RescaleIntercept = 0.0
    ds.ActualFrameDuration = 300000
    ds.PixelSpacing = [2.0, 2.0]
    ds.SliceThickness = 3.0
    ds.CorrectedImage = ["DECY", "ATTN", "DCAL"]
    rp = Dataset()
    rp.RadiopharmaceuticalStartTime = "100000"
    rp.RadionuclideTotalDose = DOSE
    rp.RadionuclideHalfLife = F18
    ds.RadiopharmaceuticalInformationSequence = [rp]
    for k, v in over.items():
        if k.startswith("rp_"):
            if v is None:
                delattr(rp, k[3:])
            else:
                setattr(rp, k[3:], v)
        elif v is None:
            if k in ds:
                delattr(ds, k)
        else:
            setattr(ds, k, v)
    return ds


def bq_to_suv(seconds_since_injection: float, half_life: float = F18) -> float:
    """SUVbw per Bq/ml: W / (D 2^(-t / T1/2))."""
    return W_G / (DOSE * 2.0 ** (-seconds_since_injection / half_life))


# --- units ------------------------------------------------------------------------------------


def test_bqml_start_series_time():
    assert suv_factor(pet()) == pytest.approx(bq_to_suv(3600.0), rel=1e-9)


def test_admin_uses_dose_as_given():
    assert suv_factor(pet(DecayCorrection="ADMIN")) == pytest.approx(W_G / DOSE, rel=1e-12)


def test_gml_bw_is_already_suv():
    assert suv_factor(pet(Units="GML", SUVType="BW")) == 1.0
    assert suv_factor(pet(Units="GML", SUVType=None)) == 1.0  # empty SUVType means BW


# lean masses for W = 70 kg, H = 175 cm: (W/H)^2 = 0.16, BMI = 22.857142857
LBM_M, LBM_F = 77.0 - 19.2, 74.9 - 23.68  # 1.10W - 120(W/H)^2, 1.07W - 148(W/H)^2
JAMES_M = 77.0 - 20.48  # 1.10W - 128(W/H)^2
JANMA_M = 648900.0 / (6680.0 + 216.0 * 22.857142857142858)
JANMA_F = 648900.0 / (8780.0 + 244.0 * 22.857142857142858)
IBW_M, IBW_F = 48.0 + 1.06 * 23.0, 45.5 + 0.91 * 23.0


@pytest.mark.parametrize(
    "suv_type, sex, lean",
    [
        ("LBM", "M", LBM_M),
        ("LBM", "F", LBM_F),
        ("LBM", "O", (LBM_M + LBM_F) / 2),  # the mean of the two factors, not of two SUVs
        ("LBMJAMES128", "M", JAMES_M),
        ("LBMJAMES128", "F", LBM_F),
        ("LBMJANMA", "M", JANMA_M),
        ("LBMJANMA", "F", JANMA_F),
        ("LBMJANMA", "O", (JANMA_M + JANMA_F) / 2),
        ("IBW", "M", IBW_M),
        ("IBW", "F", IBW_F),
    ],
)
def test_gml_other_suv_types_back_to_bw(suv_type, sex, lean):
    f = suv_factor(pet(Units="GML", SUVType=suv_type, PatientSex=sex))
    assert f == pytest.approx(70.0 / lean, rel=1e-9)


def test_du_bois_bsa_value():
    # 0.007184 x 175^0.725 x 70^0.425 = 0.007184 x 42.2866 x 6.0837 (Du Bois' nomogram gives 1.85 m^2)
    assert body_surface_area(70.0, 175.0) == pytest.approx(0.007184 * 42.2866 * 6.0837, rel=1e-4)
    assert round(body_surface_area(70.0, 175.0), 2) == 1.85


def test_gml_bsa_and_cm2ml():
    bsa_cm2 = 0.007184 * 175.0 ** 0.725 * 70.0 ** 0.425 * 1e4
    assert suv_factor(pet(Units="GML", SUVType="BSA")) == pytest.approx(W_G / bsa_cm2, rel=1e-9)
    assert suv_factor(pet(Units="CM2ML")) == pytest.approx(W_G / bsa_cm2, rel=1e-9)


def _private(ds: Dataset, element: int, raw: bytes) -> Dataset:
    # private tag without its private creator, stored as raw DS text with blanks (as in real files)
    ds.add_new((0x7053 << 16) | element, "UN", raw)
    return ds


def test_cnts_philips_suv_scale_factor_takes_precedence():
    ds = _private(_private(pet(Units="CNTS"), 0x1000, b" 0.000123 "), 0x1009, b"2.5 ")
    assert suv_factor(ds) == pytest.approx(0.000123, rel=1e-12)


def test_cnts_activity_concentration_factor_then_bqml():
    ds = _private(pet(Units="CNTS"), 0x1009, b" 2.5")
    assert suv_factor(ds) == pytest.approx(2.5 * bq_to_suv(3600.0), rel=1e-9)


def test_cnts_zero_factors_fall_back_to_cps():
    ds = _private(_private(pet(Units="CNTS"), 0x1000, b"0.0 "), 0x1009, b"0.0")
    vox_ml = 2.0 * 2.0 * 3.0 / 1000.0
    assert suv_factor(ds) == pytest.approx(1.0 / 300.0 / vox_ml * bq_to_suv(3600.0), rel=1e-9)


def test_cps_dose_calibrated_and_not():
    vox_ml = 0.012
    assert suv_factor(pet(Units="CPS")) == pytest.approx(bq_to_suv(3600.0) / vox_ml, rel=1e-9)
    ds = pet(Units="CPS", CorrectedImage=["DECY", "ATTN"], DoseCalibrationFactor=1.5)
    assert suv_factor(ds) == pytest.approx(1.5 * bq_to_suv(3600.0) / vox_ml, rel=1e-9)


# --- times ------------------------------------------------------------------------------------


def test_ge_private_scan_datetime_wins():
    ds = pet()
    ds.add_new(0x0009100D, "UN", b"20200101103000.00 ")
    assert suv_factor(ds) == pytest.approx(bq_to_suv(1800.0), rel=1e-9)


def test_series_time_after_acquisition_uses_earliest_acquisition():
    a = pet(SeriesTime="120000", AcquisitionTime="110500")
    b = pet(SeriesTime="120000", AcquisitionTime="110000")
    f = suv_factors([a, b])
    assert f == pytest.approx([bq_to_suv(3600.0)] * 2, rel=1e-9)


def test_series_time_compared_as_full_datetime():
    # series on the previous day at 23:00 is earlier than a 00:30 acquisition: it is used
    ds = pet(SeriesDate="20200101", SeriesTime="230000", AcquisitionDate="20200102", AcquisitionTime="003000",
             rp_RadiopharmaceuticalStartTime="220000")
    assert suv_factor(ds) == pytest.approx(bq_to_suv(3600.0), rel=1e-9)


def test_frame_reference_time_per_slice():
    lam = LN2 / F18
    T = 300.0
    shift = math.log(lam * T / (1.0 - math.exp(-lam * T))) / lam
    a = pet(SeriesTime="120000", AcquisitionTime="110000", FrameReferenceTime=150000.0)
    b = pet(SeriesTime="120000", AcquisitionTime="110500", FrameReferenceTime=450000.0)
    got = suv_factors([a, b])
    ta = 3600.0 + shift - 150.0
    tb = 3900.0 + shift - 450.0
    assert got == pytest.approx([bq_to_suv(ta), bq_to_suv(tb)], rel=1e-9)


def test_decay_none_per_slice():
    lam = LN2 / F18
    T = 300.0
    frame = lam * T / (1.0 - math.exp(-lam * T))
    a = pet(DecayCorrection="NONE", AcquisitionTime="110000")
    b = pet(DecayCorrection="NONE", AcquisitionTime="113000")
    got = suv_factors([a, b])
    want = [W_G / DOSE * frame * math.exp(lam * 3600.0), W_G / DOSE * frame * math.exp(lam * 5400.0)]
    assert got == pytest.approx(want, rel=1e-9)


def test_injection_before_midnight():
    ds = pet(SeriesDate="20200102", SeriesTime="003000", AcquisitionDate="20200102", AcquisitionTime="003000",
             rp_RadiopharmaceuticalStartTime="233000")
    assert suv_factor(ds) == pytest.approx(bq_to_suv(3600.0), rel=1e-9)


def test_injection_before_midnight_decay_none():
    lam = LN2 / F18
    frame = lam * 300.0 / (1.0 - math.exp(-lam * 300.0))
    ds = pet(DecayCorrection="NONE", SeriesDate="20200102", AcquisitionDate="20200102", AcquisitionTime="003000",
             SeriesTime="003000", rp_RadiopharmaceuticalStartTime="233000")
    assert suv_factor(ds) == pytest.approx(W_G / DOSE * frame * math.exp(lam * 3600.0), rel=1e-9)


def test_start_datetime_preferred_over_start_time():
    ds = pet(rp_RadiopharmaceuticalStartDateTime="20200101093000", rp_RadiopharmaceuticalStartTime="120000")
    assert suv_factor(ds) == pytest.approx(bq_to_suv(5400.0), rel=1e-9)


# --- unit slips and nuclides ------------------------------------------------------------------


def test_dose_in_mbq_and_weight_in_grams():
    with pytest.warns(UserWarning, match="MBq"):
        a = suv_factor(pet(rp_RadionuclideTotalDose=370.0))
    with pytest.warns(UserWarning, match="grams"):
        b = suv_factor(pet(PatientWeight=70000.0))
    assert a == pytest.approx(bq_to_suv(3600.0), rel=1e-9)
    assert b == pytest.approx(bq_to_suv(3600.0), rel=1e-9)


@pytest.mark.parametrize("meaning, half_life", [("^68^Gallium", 4057.7), ("^89^Zirconium", 282276.0),
                                                ("^64^Copper", 45724.0), ("^18^Fluorine", 6586.2)])
def test_half_life_from_nuclide_code(meaning, half_life):
    code = Dataset()
    code.CodeValue = "X"
    code.CodeMeaning = meaning
    ds = pet(rp_RadionuclideHalfLife=None)
    ds.RadiopharmaceuticalInformationSequence[0].RadionuclideCodeSequence = [code]
    assert suv_factor(ds) == pytest.approx(bq_to_suv(3600.0, half_life), rel=1e-9)


# --- other normalisations -----------------------------------------------------------------------


def test_other_normalisations_from_bqml():
    bw = bq_to_suv(3600.0)
    assert suv_factor(pet(), "lbm") == pytest.approx(bw * JANMA_M / 70.0, rel=1e-9)
    assert suv_factor(pet(), "lbm_james") == pytest.approx(bw * JAMES_M / 70.0, rel=1e-9)
    assert suv_factor(pet(), "ibw") == pytest.approx(bw * IBW_M / 70.0, rel=1e-9)
    bsa_cm2 = 0.007184 * 175.0 ** 0.725 * 70.0 ** 0.425 * 1e4
    assert suv_factor(pet(), "bsa") == pytest.approx(bw * bsa_cm2 / W_G, rel=1e-9)


# --- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "over, tag",
    [
        ({"PatientWeight": None}, "PatientWeight (0010,1030)"),
        ({"PatientWeight": 0.0}, "PatientWeight (0010,1030)"),
        ({"Units": "PROPCNTS"}, "Units (0054,1001)"),
        ({"Units": "1CM"}, "Units (0054,1001)"),
        ({"RescaleIntercept": 5.0}, "RescaleIntercept (0028,1052)"),
        ({"rp_RadionuclideTotalDose": None}, "RadionuclideTotalDose (0018,1074)"),
        ({"rp_RadionuclideHalfLife": None}, "RadionuclideHalfLife (0018,1075)"),
        ({"DecayCorrection": "WEIRD"}, "DecayCorrection (0054,1102)"),
        ({"Units": "GML", "SUVType": "LBM", "PatientSize": None}, "PatientSize (0010,1020)"),
        ({"Units": "CPS", "CorrectedImage": ["ATTN"]}, "DoseCalibrationFactor (0054,1322)"),
    ],
)
def test_refusals_name_the_tags(over, tag):
    with pytest.raises(SUVError) as err:
        suv_factor(pet(**over))
    assert tag in str(err.value)


def test_unknown_kind():
    with pytest.raises(SUVError, match="unknown normalisation"):
        suv_factor(pet(), "banana")


# --- through the DICOM reader --------------------------------------------------------------------


def test_reader_applies_per_slice_slope_then_suv(tmp_path):
    vol = np.arange(3 * 2 * 2, dtype=np.int16).reshape(3, 2, 2) * 10
    slopes = [0.5, 2.0, 1.25]
    rp = pet().RadiopharmaceuticalInformationSequence
    syn.write_series(tmp_path, vol, modality="PT", slopes=slopes, Units="BQML", DecayCorrection="ADMIN",
                     PatientWeight=70.0, PatientSize=1.75, PatientSex="F", RadiopharmaceuticalInformationSequence=rp, SeriesDate="20200101",
                     SeriesTime="110000")
    img = load(tmp_path, suv=True)
    assert img.attrs["units"] == "SUVbw"
    np.testing.assert_allclose(img.values, vol * np.asarray(slopes)[:, None, None] * W_G / DOSE, rtol=1e-6)
    raw = load(tmp_path)
    assert raw.attrs["units"] == "Bq/ml"
    ibw = load(tmp_path, suv="ibw")
    assert ibw.attrs["units"] == "SUVibw"
    np.testing.assert_allclose(ibw.values, img.values * IBW_F / 70.0, rtol=1e-6)


def test_sts019_pet_suvmax(reference_data):
    folder = reference_data / "ibsi-sts019" / "dicom" / "STS_019" / "PET" / "image"
    img = load(folder, suv=True)
    assert img.attrs["units"] == "SUVbw"
    assert round(float(img.max()), 2) == 16.33
    # Units GML, SUVType BW: the rescaled values already are SUVbw and must not be converted again
    np.testing.assert_allclose(img.values, load(folder).values, rtol=1e-6)
