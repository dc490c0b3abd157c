"""Cycler files written by hand in each instrument's style, and a simulated cell written as an Arbin export.

Every hand-written file holds the same two cycles, in its instrument's spelling, units, separators and quirks:
charge at 0.1 A for 1 h (0.1 Ah), then discharge at 0.1 A for 1 h (0.1 Ah), rows every 30 min of each step.
So every reader must give cycles 1 and 2, 0.1 Ah of charge and of discharge per cycle, a negative current while
discharging and a discharge that lasts 60 min. The header lines, column names and units are copied from real
exports (cellpy's and beep's test files, the public files under shared/data/cycling/raw); the numbers are ours.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CAPACITY_AH = 0.1  # per half cycle in every fixture
CYCLES = [1, 2]

# Arbin MITS Pro csv export (units in the names), with its _Metadata.csv sidecar; cycles counted from 1.
ARBIN_MITS_CSV = """\
Data_Point,Test_Time(s),Step_Time(s),DateTime,Step_Index,Cycle_Index,Current(A),Voltage(V),Charge_Capacity(Ah),Discharge_Capacity(Ah),Charge_Energy(Wh),Discharge_Energy(Wh),dV/dt(V/s),Internal_Resistance(Ohm),Is_FC_Data,AC_Impedance(Ohm),ACI_Phase_Angle(Deg)
1,0.0000,0.0000,05/12/2017 23:13:34,1,1,0.1000,3.3000,0.000000,0.000000,0.000000,0.000000,0.000000,0.0000,0,0,0
2,1800.0012,1800.0012,05/12/2017 23:43:34,1,1,0.1000,3.4000,0.050000,0.000000,0.167500,0.000000,5.5e-05,0.0000,0,0,0
3,3600.0021,3600.0021,05/13/2017 00:13:34,1,1,0.1000,3.5000,0.100000,0.000000,0.340000,0.000000,5.5e-05,0.0000,0,0,0
4,3601.0021,0.0000,05/13/2017 00:13:35,2,1,-0.1000,3.3500,0.100000,0.000000,0.340000,0.000000,-0.15,0.0000,0,0,0
5,5401.0033,1800.0012,05/13/2017 00:43:35,2,1,-0.1000,3.2000,0.100000,0.050000,0.340000,0.163750,-8.3e-05,0.0000,0,0,0
6,7201.0045,3600.0024,05/13/2017 01:13:35,2,1,-0.1000,2.9000,0.100000,0.100000,0.340000,0.316250,-1.7e-04,0.0000,0,0,0
7,7202.0045,0.0000,05/13/2017 01:13:36,1,2,0.1000,3.3000,0.000000,0.000000,0.000000,0.000000,0.35,0.0000,0,0,0
8,9002.0051,1800.0006,05/13/2017 01:43:36,1,2,0.1000,3.4000,0.050000,0.000000,0.167500,0.000000,5.5e-05,0.0000,0,0,0
9,10802.0063,3600.0018,05/13/2017 02:13:36,1,2,0.1000,3.5000,0.100000,0.000000,0.340000,0.000000,5.5e-05,0.0000,0,0,0
10,10803.0063,0.0000,05/13/2017 02:13:37,2,2,-0.1000,3.3500,0.100000,0.000000,0.340000,0.000000,-0.15,0.0000,0,0,0
11,12603.0071,1800.0008,05/13/2017 02:43:37,2,2,-0.1000,3.2000,0.100000,0.050000,0.340000,0.163750,-8.3e-05,0.0000,0,0,0
12,14403.0082,3600.0019,05/13/2017 03:13:37,2,2,-0.1000,2.9000,0.100000,0.100000,0.340000,0.316250,-1.7e-04,0.0000,0,0,0
"""
ARBIN_METADATA_CSV = """\
,test_id,device_id,iv_ch_id,first_start_datetime,resumed_times,last_resume_datetime,last_end_datetime,schedule_file_name,databases,item_id,grade_id,has_aux,has_special,schedule_version,log_aux_data_flag,log_special_data_flag,rowstate,canconfig_filename,m_ncanconfigmd5,value,value2
0,153,60369369,7,1494645214,0,0,1494636676,2017-05-12_TESTS\\20170512-4_4C-80PER_4_4C.SDU,"ArbinResult_6,ArbinResult_7,",EL150800453116,0,3,0,Schedule Version 7.00.08,1,0,0,,,0.0,0.0
"""

# Arbin csv as beep's test files have it: no units in the names, unix DateTime, cycles counted from 0, and a test
# that was paused and resumed: the second part's Test_Time and Cycle_Index start again from 0.
ARBIN_PAUSED_CSV = """\
Data_Point,Test_Time,DateTime,Step_Time,Step_Index,Cycle_Index,Current,Voltage,Charge_Capacity,Discharge_Capacity,Charge_Energy,Discharge_Energy,dV/dt,Internal_Resistance,Temperature
0,0.0,1494645243.4715,0.0,1.0,0.0,0.1000301,3.3011441,0.0,0.0,0.0,0.0,-1.1444092e-05,0.0,30.109268
1,1800.0,1494647043.4715,1800.0,1.0,0.0,0.1000298,3.4011355,0.05,0.0,0.1675,0.0,-1.0490417e-05,0.0,30.102369
2,3600.0,1494648843.4715,3600.0,1.0,0.0,0.0999911,3.5011193,0.1,0.0,0.34,0.0,1.9073486e-06,0.0,30.102369
3,3601.0,1494648844.4715,0.0,2.0,0.0,-0.1000123,3.3511193,0.1,0.0,0.34,0.0,1.9073486e-06,0.0,30.131748
4,5401.0,1494650644.4715,1800.0,2.0,0.0,-0.1000093,3.2011270,0.1,0.05,0.34,0.16375,2.8610229e-06,0.0,30.131748
5,7201.0,1494652444.4715,3600.0,2.0,0.0,-0.0999962,2.9011270,0.1,0.1,0.34,0.31625,2.8610229e-06,0.0,30.092083
0,0.0,1494659644.4715,0.0,1.0,0.0,0.1000301,3.3011088,0.0,0.0,0.0,0.0,2.7656555e-05,0.0,30.069937
1,1800.0,1494661444.4715,1800.0,1.0,0.0,0.1000298,3.4011384,0.05,0.0,0.1675,0.0,-2.0980835e-05,0.0,30.081341
2,3600.0,1494663244.4715,3600.0,1.0,0.0,0.0999911,3.5011384,0.1,0.0,0.34,0.0,5.531311e-05,0.0,30.085518
3,3601.0,1494663245.4715,0.0,2.0,0.0,-0.1000123,3.3511289,0.1,0.0,0.34,0.0,1.2397766e-05,0.0,30.073296
4,5401.0,1494665045.4715,1800.0,2.0,0.0,-0.1000093,3.2011069,0.1,0.05,0.34,0.16375,-9.5367432e-06,0.0,30.073296
5,7201.0,1494666845.4715,3600.0,2.0,0.0,-0.0999962,2.9011069,0.1,0.1,0.34,0.31625,-9.5367432e-06,0.0,30.112825
"""

# Maccor raw export (#4 style): tab-separated, named after its channel (.053), header lines before the columns,
# TestTime without a unit (minutes here: the DPT Time column says so), an unsigned current with the mode in Md,
# and Cap./Ener. counting from 0 at each step.
MACCOR_TAB = (
    "Name:\tCW-SIMBA-FC-CT-NAPF6-015.053\n"
    "Channel:\t53\n"
    "Tester\tMaccor #4\n"
    "Procedure\tCW_MZ_SIMBA_CT.000\n"
    "Description\tSIMBA-Capacity_test                                                                \n"
    "Started\t5/11/2021 3:40:24 PM\n"
    "SCap\t0.100\n"
    "C Rate\t1.000\n"
    "Ch. max. V\t3.60 V\n"
    "DisCh. min. V\t2.50 V\n"
    "Ch. max. I\t5.000 A\n"
    "DisCh. max. I\t5.000 A\n"
    "\n"
    "Rec\tCycle P\tCycle C\tStep\tTestTime\tStepTime\tCap. [Ah]\tEner. [Wh]\tCurrent [A]\tVoltage [V]\tMd\tES\t"
    "DPT Time\tVAR1\tVAR2\t\n"
    "\n"
    "1\t0\t1\t1\t0.000000\t0.000000\t0.00000000\t0.00000000\t0.10000000\t3.3000\tC\t0\t5/11/2021 3:40:24 PM\t0.0000\t0.0000\t\n"
    "2\t0\t1\t1\t30.000000\t30.000000\t0.05000000\t0.16750000\t0.10000000\t3.4000\tC\t1\t5/11/2021 4:10:24 PM\t0.0000\t0.0000\t\n"
    "3\t0\t1\t1\t60.000000\t60.000000\t0.10000000\t0.34000000\t0.10000000\t3.5000\tC\t133\t5/11/2021 4:40:24 PM\t0.0000\t0.0000\t\n"
    "4\t0\t1\t2\t60.016667\t0.000000\t0.00000000\t0.00000000\t0.10000000\t3.3500\tD\t0\t5/11/2021 4:40:25 PM\t0.0000\t0.0000\t\n"
    "5\t0\t1\t2\t90.016667\t30.000000\t0.05000000\t0.16375000\t0.10000000\t3.2000\tD\t1\t5/11/2021 5:10:25 PM\t0.0000\t0.0000\t\n"
    "6\t0\t1\t2\t120.016667\t60.000000\t0.10000000\t0.31625000\t0.10000000\t2.9000\tD\t133\t5/11/2021 5:40:25 PM\t0.0000\t0.0000\t\n"
    "7\t0\t2\t1\t120.033333\t0.000000\t0.00000000\t0.00000000\t0.10000000\t3.3000\tC\t0\t5/11/2021 5:40:26 PM\t0.0000\t0.0000\t\n"
    "8\t0\t2\t1\t150.033333\t30.000000\t0.05000000\t0.16750000\t0.10000000\t3.4000\tC\t1\t5/11/2021 6:10:26 PM\t0.0000\t0.0000\t\n"
    "9\t0\t2\t1\t180.033333\t60.000000\t0.10000000\t0.34000000\t0.10000000\t3.5000\tC\t133\t5/11/2021 6:40:26 PM\t0.0000\t0.0000\t\n"
    "10\t0\t2\t2\t180.050000\t0.000000\t0.00000000\t0.00000000\t0.10000000\t3.3500\tD\t0\t5/11/2021 6:40:27 PM\t0.0000\t0.0000\t\n"
    "11\t0\t2\t2\t210.050000\t30.000000\t0.05000000\t0.16375000\t0.10000000\t3.2000\tD\t1\t5/11/2021 7:10:27 PM\t0.0000\t0.0000\t\n"
    "12\t0\t2\t2\t240.050000\t60.000000\t0.10000000\t0.31625000\t0.10000000\t2.9000\tD\t133\t5/11/2021 7:40:27 PM\t0.0000\t0.0000\t\n"
)

# Maccor raw file as beep's test files have it: a "Today's Date" line, 'Rec#/Cyc#/Test (Sec)/Amp-hr/Amps/Volts/
# State' columns, cycles from 0, the mode in State, 'N/A' in the waveform columns.
MACCOR_RAW = (
    "Today's Date 09/01/2020  Date of Test:\t12/16/2019\t Filename:\tE:\\Backup\\STANFORD LOANER #1\\"
    "PreDiag_000229_000229.034 Procedure: PreDiag_000229.000\tComment/Barcode: 000229\n"
    "Rec#\tCyc#\tStep\tTest (Sec)\tStep (Sec)\tAmp-hr\tWatt-hr\tAmps\tVolts\tState\tES\tDPt Time\tLoop1\t"
    "ACImp/Ohms\tDCIR/Ohms\tWF Chg Cap\tWF Dis Cap\tRange\tVAR1\n"
    "1\t0\t1\t0.0000\t0.0000\t0.0000000000\t0.0000000000\t0.1000000000\t3.30000000\tC\t0\t12/16/2019 14:03:25\t0\t0.00000\t0.00000\tN/A\tN/A\t1\t0.00000\n"
    "2\t0\t1\t1800.0000\t1800.0000\t0.0500000000\t0.1675000000\t0.1000000000\t3.40000000\tC\t1\t12/16/2019 14:33:25\t0\t0.00000\t0.00000\tN/A\tN/A\t1\t0.00000\n"
    "3\t0\t1\t3600.0000\t3600.0000\t0.1000000000\t0.3400000000\t0.1000000000\t3.50000000\tC\t133\t12/16/2019 15:03:25\t0\t0.00000\t0.00000\tN/A\tN/A\t1\t0.00000\n"
    "4\t0\t2\t3601.0000\t0.0000\t0.0000000000\t0.0000000000\t0.1000000000\t3.35000000\tD\t0\t12/16/2019 15:03:26\t0\t0.00000\t0.00000\tN/A\tN/A\t1\t0.00000\n"
    "5\t0\t2\t5401.0000\t1800.0000\t0.0500000000\t0.1637500000\t0.1000000000\t3.20000000\tD\t1\t12/16/2019 15:33:26\t0\t0.00000\t0.00000\tN/A\tN/A\t1\t0.00000\n"
    "6\t0\t2\t7201.0000\t3600.0000\t0.1000000000\t0.3162500000\t0.1000000000\t2.90000000\tD\t133\t12/16/2019 16:03:26\t0\t0.00000\t0.00000\tN/A\tN/A\t1\t0.00000\n"
    "7\t1\t1\t7202.0000\t0.0000\t0.0000000000\t0.0000000000\t0.1000000000\t3.30000000\tC\t0\t12/16/2019 16:03:27\t0\t0.00000\t0.00000\tN/A\tN/A\t1\t0.00000\n"
    "8\t1\t1\t9002.0000\t1800.0000\t0.0500000000\t0.1675000000\t0.1000000000\t3.40000000\tC\t1\t12/16/2019 16:33:27\t0\t0.00000\t0.00000\tN/A\tN/A\t1\t0.00000\n"
    "9\t1\t1\t10802.0000\t3600.0000\t0.1000000000\t0.3400000000\t0.1000000000\t3.50000000\tC\t133\t12/16/2019 17:03:27\t0\t0.00000\t0.00000\tN/A\tN/A\t1\t0.00000\n"
    "10\t1\t2\t10803.0000\t0.0000\t0.0000000000\t0.0000000000\t0.1000000000\t3.35000000\tD\t0\t12/16/2019 17:03:28\t0\t0.00000\t0.00000\tN/A\tN/A\t1\t0.00000\n"
    "11\t1\t2\t12603.0000\t1800.0000\t0.0500000000\t0.1637500000\t0.1000000000\t3.20000000\tD\t1\t12/16/2019 17:33:28\t0\t0.00000\t0.00000\tN/A\tN/A\t1\t0.00000\n"
    "12\t1\t2\t14403.0000\t3600.0000\t0.1000000000\t0.3162500000\t0.1000000000\t2.90000000\tD\t133\t12/16/2019 18:03:28\t0\t0.00000\t0.00000\tN/A\tN/A\t1\t0.00000\n"
)

# Maccor's comma-separated export with 'Quantity / unit' names (as the Battery Data Format spells them).
MACCOR_COMMA = """\
Name:,CW-SIMBA-FC-CT-NAPF6-015.054
Channel:,54
Tester,Maccor #4
Test Time / h,Current / A,Voltage / V,Cycle Count / 1,Step Index / 1,Step Type / 1,Charge Capacity / Ah,Discharge Capacity / Ah
0,0.1,3.3,1,1,charge,0,0
0.5,0.1,3.4,1,1,charge,0.05,0
1,0.1,3.5,1,1,charge,0.1,0
1.000277778,-0.1,3.35,1,2,discharge,0,0
1.500277778,-0.1,3.2,1,2,discharge,0,0.05
2.000277778,-0.1,2.9,1,2,discharge,0,0.1
2.000555556,0.1,3.3,2,1,charge,0,0
2.500555556,0.1,3.4,2,1,charge,0.05,0
3.000555556,0.1,3.5,2,1,charge,0.1,0
3.000833333,-0.1,3.35,2,2,discharge,0,0
3.500833333,-0.1,3.2,2,2,discharge,0,0.05
4.000833333,-0.1,2.9,2,2,discharge,0,0.1
"""

# BioLogic EC-Lab text export (.mpt) from a French-locale PC: tab-separated, decimal commas, mA and mA.h,
# cycle number from 0, Q charge / Q discharge restarting at each half cycle, (Q-Qo) over the whole test.
BIOLOGIC_MPT = (
    "EC-Lab ASCII FILE\n"
    "Nb header lines : 6\n"
    "\n"
    "Galvanostatic Cycling with Potential Limitation\n"
    "\n"
    "mode\tox/red\terror\tcontrol changes\tNs changes\tcounter inc.\tNs\ttime/s\tcontrol/V/mA\tEwe/V\t<I>/mA\t"
    "dQ/C\t(Q-Qo)/mA.h\thalf cycle\tQ discharge/mA.h\tQ charge/mA.h\tcycle number\n"
    "1\t1\t0\t1\t1\t0\t0\t0,0000000E+000\t1,0000E+002\t3,3000000E+000\t1,0000000E+002\t0,0000000E+000\t0,0000000E+000\t0\t0,0000000E+000\t0,0000000E+000\t0,0000000E+000\n"
    "1\t1\t0\t0\t0\t0\t0\t1,8000000E+003\t1,0000E+002\t3,4000000E+000\t1,0000000E+002\t1,8000000E+002\t5,0000000E+001\t0\t0,0000000E+000\t5,0000000E+001\t0,0000000E+000\n"
    "1\t1\t0\t0\t0\t0\t0\t3,6000000E+003\t1,0000E+002\t3,5000000E+000\t1,0000000E+002\t1,8000000E+002\t1,0000000E+002\t0\t0,0000000E+000\t1,0000000E+002\t0,0000000E+000\n"
    "1\t0\t0\t1\t1\t0\t1\t3,6010000E+003\t-1,0000E+002\t3,3500000E+000\t-1,0000000E+002\t0,0000000E+000\t1,0000000E+002\t1\t0,0000000E+000\t0,0000000E+000\t0,0000000E+000\n"
    "1\t0\t0\t0\t0\t0\t1\t5,4010000E+003\t-1,0000E+002\t3,2000000E+000\t-1,0000000E+002\t-1,8000000E+002\t5,0000000E+001\t1\t5,0000000E+001\t0,0000000E+000\t0,0000000E+000\n"
    "1\t0\t0\t0\t0\t0\t1\t7,2010000E+003\t-1,0000E+002\t2,9000000E+000\t-1,0000000E+002\t-1,8000000E+002\t0,0000000E+000\t1\t1,0000000E+002\t0,0000000E+000\t0,0000000E+000\n"
    "1\t1\t0\t1\t1\t1\t0\t7,2020000E+003\t1,0000E+002\t3,3000000E+000\t1,0000000E+002\t0,0000000E+000\t0,0000000E+000\t2\t0,0000000E+000\t0,0000000E+000\t1,0000000E+000\n"
    "1\t1\t0\t0\t0\t0\t0\t9,0020000E+003\t1,0000E+002\t3,4000000E+000\t1,0000000E+002\t1,8000000E+002\t5,0000000E+001\t2\t0,0000000E+000\t5,0000000E+001\t1,0000000E+000\n"
    "1\t1\t0\t0\t0\t0\t0\t1,0802000E+004\t1,0000E+002\t3,5000000E+000\t1,0000000E+002\t1,8000000E+002\t1,0000000E+002\t2\t0,0000000E+000\t1,0000000E+002\t1,0000000E+000\n"
    "1\t0\t0\t1\t1\t0\t1\t1,0803000E+004\t-1,0000E+002\t3,3500000E+000\t-1,0000000E+002\t0,0000000E+000\t1,0000000E+002\t3\t0,0000000E+000\t0,0000000E+000\t1,0000000E+000\n"
    "1\t0\t0\t0\t0\t0\t1\t1,2603000E+004\t-1,0000E+002\t3,2000000E+000\t-1,0000000E+002\t-1,8000000E+002\t5,0000000E+001\t3\t5,0000000E+001\t0,0000000E+000\t1,0000000E+000\n"
    "1\t0\t0\t0\t0\t0\t1\t1,4403000E+004\t-1,0000E+002\t2,9000000E+000\t-1,0000000E+002\t-1,8000000E+002\t0,0000000E+000\t3\t1,0000000E+002\t0,0000000E+000\t1,0000000E+000\n"
)

# Neware BTS csv export: hh:mm:ss times (step 'Time' and 'Cumulative Time'), capacities per step.
NEWARE_CSV = """\
DataPoint,Cycle Index,Step Index,Step Type,Time,Cumulative Time,Current(A),Voltage(V),Capacity(Ah),Spec. Cap.(mAh/g),Chg. Cap.(Ah),Chg. Spec. Cap.(mAh/g),DChg. Cap.(Ah),DChg. Spec. Cap.(mAh/g),Energy(Wh),Spec. Energy(mWh/g),Chg. Energy(Wh),Chg. Spec. Energy(mWh/g),DChg. Energy(Wh),DChg. Spec. Energy(mWh/g),Date,Power(W),dQ/dV(mAh/V),dQm/dV(mAh/V.g),Contact resistance(mO),Module start-stop switch
1,1,1,CC Chg,00:00:00,00:00:00,0.10000000,3.3000,0,0.00,0.00000000,0.00,0.00000000,0.00,0.00000000,0.00,0.00000000,0.00,0.00000000,0.00,2022-05-18 16:27:52,0.33000000,0.0000,0.0000,0,Close
2,1,1,CC Chg,00:30:00,00:30:00,0.10000000,3.4000,0.05,0.00,0.05000000,0.00,0.00000000,0.00,0.16750000,0.00,0.16750000,0.00,0.00000000,0.00,2022-05-18 16:57:52,0.34000000,0.0000,0.0000,0,Close
3,1,1,CC Chg,01:00:00,01:00:00,0.10000000,3.5000,0.1,0.00,0.10000000,0.00,0.00000000,0.00,0.34000000,0.00,0.34000000,0.00,0.00000000,0.00,2022-05-18 17:27:52,0.35000000,0.0000,0.0000,0,Close
4,1,2,CC DChg,00:00:00,01:00:01,-0.10000000,3.3500,0,0.00,0.00000000,0.00,0.00000000,0.00,0.00000000,0.00,0.00000000,0.00,0.00000000,0.00,2022-05-18 17:27:53,-0.33500000,0.0000,0.0000,0,Close
5,1,2,CC DChg,00:30:00,01:30:01,-0.10000000,3.2000,0.05,0.00,0.00000000,0.00,0.05000000,0.00,0.16375000,0.00,0.00000000,0.00,0.16375000,0.00,2022-05-18 17:57:53,-0.32000000,0.0000,0.0000,0,Close
6,1,2,CC DChg,01:00:00,02:00:01,-0.10000000,2.9000,0.1,0.00,0.00000000,0.00,0.10000000,0.00,0.31625000,0.00,0.00000000,0.00,0.31625000,0.00,2022-05-18 18:27:53,-0.29000000,0.0000,0.0000,0,Close
7,2,3,CC Chg,00:00:00,02:00:02,0.10000000,3.3000,0,0.00,0.00000000,0.00,0.00000000,0.00,0.00000000,0.00,0.00000000,0.00,0.00000000,0.00,2022-05-18 18:27:54,0.33000000,0.0000,0.0000,0,Close
8,2,3,CC Chg,00:30:00,02:30:02,0.10000000,3.4000,0.05,0.00,0.05000000,0.00,0.00000000,0.00,0.16750000,0.00,0.16750000,0.00,0.00000000,0.00,2022-05-18 18:57:54,0.34000000,0.0000,0.0000,0,Close
9,2,3,CC Chg,01:00:00,03:00:02,0.10000000,3.5000,0.1,0.00,0.10000000,0.00,0.00000000,0.00,0.34000000,0.00,0.34000000,0.00,0.00000000,0.00,2022-05-18 19:27:54,0.35000000,0.0000,0.0000,0,Close
10,2,4,CC DChg,00:00:00,03:00:03,-0.10000000,3.3500,0,0.00,0.00000000,0.00,0.00000000,0.00,0.00000000,0.00,0.00000000,0.00,0.00000000,0.00,2022-05-18 19:27:55,-0.33500000,0.0000,0.0000,0,Close
11,2,4,CC DChg,00:30:00,03:30:03,-0.10000000,3.2000,0.05,0.00,0.00000000,0.00,0.05000000,0.00,0.16375000,0.00,0.00000000,0.00,0.16375000,0.00,2022-05-18 19:57:55,-0.32000000,0.0000,0.0000,0,Close
12,2,4,CC DChg,01:00:00,04:00:03,-0.10000000,2.9000,0.1,0.00,0.00000000,0.00,0.10000000,0.00,0.31625000,0.00,0.00000000,0.00,0.31625000,0.00,2022-05-18 20:27:55,-0.29000000,0.0000,0.0000,0,Close
"""

# PEC SBT csv export: a long key-value preamble, hh:mm:ss.xxx total time, mAh and mWh, cycles from 0, and data
# rows with more (empty) fields than the header names.
PEC_CSV = """\
Request Year:,2026
Test:,25205
Test Description:,
TestRegime Name:,OCV generic long HP
TestRegime CellSize:,100 mAh
Number Of Cells:,1
Parameter names:,C-Rate (mAh),Mass (kg),Peak power (W)
Parameter values:,100,0.002,1
Chemistry:,Li-ion LG NMC
Start Time:,01/08/2026 17:40:39
Start Time Format:,G
End Time:,01/09/2026 13:22:40
End Time Format:,G
Operator Instructions:,
Test,Cell,Rack,Shelf,Position,Cell ID,Step,Instruction Name,Cycle,Total Time (Hours in hh:mm:ss.xxx),Load On Time (Hours in hh:mm:ss.xxx),Step Time (Seconds),Cycle Charge Time (Hours in hh:mm:ss.xxx),Cycle Discharge Time (Hours in hh:mm:ss.xxx),Real Time,Position Start Time,Voltage (V),Current (A),Charge Capacity (mAh),Discharge Capacity (mAh),Charge Energy (mWh),Discharge Energy (mWh),ReasonCode,
25205,1,ACT4,014,1,345626_9356111_33_6,1,Charge,0,00:00:00.000,00:00:00.000,0,00:00:00.000,00:00:00.000,01/08/2026 17:45:08,01/08/2026 17:45:08,3.3,0.1,0,0,0,0,1,0,0,,,,,,,,,,19.26,,
25205,1,ACT4,014,1,345626_9356111_33_6,1,Charge,0,00:30:00.000,00:30:00.000,1800,00:30:00.000,00:00:00.000,01/08/2026 18:15:08,01/08/2026 17:45:08,3.4,0.1,50,0,167.5,0,30,0,0,,,,,,,,,,19.26,,
25205,1,ACT4,014,1,345626_9356111_33_6,1,Charge,0,01:00:00.000,01:00:00.000,3600,01:00:00.000,00:00:00.000,01/08/2026 18:45:08,01/08/2026 17:45:08,3.5,0.1,100,0,340,0,30,0,0,,,,,,,,,,19.26,,
25205,1,ACT4,014,1,345626_9356111_33_6,2,Discharge,0,01:00:01.000,01:00:01.000,0,01:00:00.000,00:00:00.000,01/08/2026 18:45:09,01/08/2026 17:45:08,3.35,-0.1,100,0,340,0,1,0,0,,,,,,,,,,19.31,,
25205,1,ACT4,014,1,345626_9356111_33_6,2,Discharge,0,01:30:01.000,01:30:01.000,1800,01:00:00.000,00:30:00.000,01/08/2026 19:15:09,01/08/2026 17:45:08,3.2,-0.1,100,50,340,163.75,30,0,0,,,,,,,,,,19.42,,
25205,1,ACT4,014,1,345626_9356111_33_6,2,Discharge,0,02:00:01.000,02:00:01.000,3600,01:00:00.000,01:00:00.000,01/08/2026 19:45:09,01/08/2026 17:45:08,2.9,-0.1,100,100,340,316.25,30,0,0,,,,,,,,,,19.50,,
25205,1,ACT4,014,1,345626_9356111_33_6,1,Charge,1,02:00:02.000,02:00:02.000,0,00:00:00.000,00:00:00.000,01/08/2026 19:45:10,01/08/2026 17:45:08,3.3,0.1,0,0,0,0,1,0,0,,,,,,,,,,19.46,,
25205,1,ACT4,014,1,345626_9356111_33_6,1,Charge,1,02:30:02.000,02:30:02.000,1800,00:30:00.000,00:00:00.000,01/08/2026 20:15:10,01/08/2026 17:45:08,3.4,0.1,50,0,167.5,0,30,0,0,,,,,,,,,,19.40,,
25205,1,ACT4,014,1,345626_9356111_33_6,1,Charge,1,03:00:02.000,03:00:02.000,3600,01:00:00.000,00:00:00.000,01/08/2026 20:45:10,01/08/2026 17:45:08,3.5,0.1,100,0,340,0,30,0,0,,,,,,,,,,19.38,,
25205,1,ACT4,014,1,345626_9356111_33_6,2,Discharge,1,03:00:03.000,03:00:03.000,0,01:00:00.000,00:00:00.000,01/08/2026 20:45:11,01/08/2026 17:45:08,3.35,-0.1,100,0,340,0,1,0,0,,,,,,,,,,19.37,,
25205,1,ACT4,014,1,345626_9356111_33_6,2,Discharge,1,03:30:03.000,03:30:03.000,1800,01:00:00.000,00:30:00.000,01/08/2026 21:15:11,01/08/2026 17:45:08,3.2,-0.1,100,50,340,163.75,30,0,0,,,,,,,,,,19.36,,
25205,1,ACT4,014,1,345626_9356111_33_6,2,Discharge,1,04:00:03.000,04:00:03.000,3600,01:00:00.000,01:00:00.000,01/08/2026 21:45:11,01/08/2026 17:45:08,2.9,-0.1,100,100,340,316.25,30,0,0,,,,,,,,,,19.35,,
"""

# Novonix csv: [Summary] block, run time in hours, numeric step types, one capacity column per step, cycles from 0.
NOVONIX_CSV = """\
[Summary]
Started: 2023-06-14 5:22:45 PM
Protocol: Formation_C10.prt
[End Summary]
[Data]
Date and Time,Cycle Number,Step Type,Run Time (h),Step Time (h),Current (A),Potential (V),Capacity (Ah),Temperature (°C),Circuit Temperature (°C),Energy (Wh),Step Number,Step position
2023-06-14 5:22:45 PM,0,1,0,0,0.1,3.3,0,25.1,26.0,0,1,1
2023-06-14 5:52:45 PM,0,1,0.5,0.5,0.1,3.4,0.05,25.2,26.0,0.1675,1,2
2023-06-14 6:22:45 PM,0,1,1,1,0.1,3.5,0.1,25.3,26.1,0.34,1,3
2023-06-14 6:22:46 PM,0,2,1.000277778,0,-0.1,3.35,0,25.3,26.1,0,2,1
2023-06-14 6:52:46 PM,0,2,1.500277778,0.5,-0.1,3.2,0.05,25.4,26.2,0.16375,2,2
2023-06-14 7:22:46 PM,0,2,2.000277778,1,-0.1,2.9,0.1,25.5,26.2,0.31625,2,3
2023-06-14 7:22:47 PM,1,1,2.000555556,0,0.1,3.3,0,25.4,26.1,0,3,1
2023-06-14 7:52:47 PM,1,1,2.500555556,0.5,0.1,3.4,0.05,25.3,26.1,0.1675,3,2
2023-06-14 8:22:47 PM,1,1,3.000555556,1,0.1,3.5,0.1,25.3,26.0,0.34,3,3
2023-06-14 8:22:48 PM,1,2,3.000833333,0,-0.1,3.35,0,25.2,26.0,0,4,1
2023-06-14 8:52:48 PM,1,2,3.500833333,0.5,-0.1,3.2,0.05,25.2,26.0,0.16375,4,2
2023-06-14 9:22:48 PM,1,2,4.000833333,1,-0.1,2.9,0.1,25.1,26.0,0.31625,4,3
"""

# Battery Data Format csv as batmo's export has it: the current is positive while discharging (the opposite of
# our convention: the reader must flip it), capacities counted from 0 in each step.
BDF_CSV = """\
Test Time / h,Current / A,Voltage / V,Protocol Name / 1,Step Type / 1,Cycle Count / 1,Step Index / 1,Charge Capacity / Ah,Discharge Capacity / Ah
0,-0.1,3.3,0,charge,1,1,0,0
0.5,-0.1,3.4,0,charge,1,1,0.05,0
1,-0.1,3.5,0,charge,1,1,0.1,0
1.000277777777778,0.1,3.35,0,discharge,1,2,0,0
1.500277777777778,0.1,3.2,0,discharge,1,2,0,0.05
2.000277777777778,0.1,2.9,0,discharge,1,2,0,0.1
2.000555555555556,-0.1,3.3,0,charge,2,1,0,0
2.500555555555556,-0.1,3.4,0,charge,2,1,0.05,0
3.000555555555556,-0.1,3.5,0,charge,2,1,0.1,0
3.000833333333333,0.1,3.35,0,discharge,2,2,0,0
3.500833333333333,0.1,3.2,0,discharge,2,2,0,0.05
4.000833333333333,0.1,2.9,0,discharge,2,2,0,0.1
"""

# A Battery Data Format csv with the convention's other columns: unix time, a step counter, a named sensor.
BDF_FULL_CSV = """\
Test Time / s,Unix Time / s,Current / A,Voltage / V,Cycle Count / 1,Step Count / 1,Charge Capacity / Ah,Discharge Capacity / Ah,Charge Energy / Wh,Discharge Energy / Wh,Temperature T1 / degC,Ambient Temperature / degC
0,1700000000,0.1,3.3,1,1,0,0,0,0,25.0,22.0
1800,1700001800,0.1,3.4,1,1,0.05,0,0.1675,0,25.1,22.0
3600,1700003600,0.1,3.5,1,1,0.1,0,0.34,0,25.2,22.0
3601,1700003601,-0.1,3.35,1,2,0.1,0,0.34,0,25.2,22.0
5401,1700005401,-0.1,3.2,1,2,0.1,0.05,0.34,0.16375,25.3,22.1
7201,1700007201,-0.1,2.9,1,2,0.1,0.1,0.34,0.31625,25.4,22.1
7202,1700007202,0.1,3.3,2,3,0,0,0,0,25.3,22.1
9002,1700009002,0.1,3.4,2,3,0.05,0,0.1675,0,25.2,22.1
10802,1700010802,0.1,3.5,2,3,0.1,0,0.34,0,25.2,22.0
10803,1700010803,-0.1,3.35,2,4,0.1,0,0.34,0,25.1,22.0
12603,1700012603,-0.1,3.2,2,4,0.1,0.05,0.34,0.16375,25.1,22.0
14403,1700014403,-0.1,2.9,2,4,0.1,0.1,0.34,0.31625,25.0,22.0
"""

# file name -> (text, encoding, reader key, instrument)
FIXTURES = {
    "arbin_mits.csv": (ARBIN_MITS_CSV, "utf-8", "arbin_csv", "Arbin"),
    "arbin_paused.csv": (ARBIN_PAUSED_CSV, "utf-8", "arbin_csv", "Arbin"),
    "channel_53.053": (MACCOR_TAB, "cp1252", "maccor", "Maccor"),
    "maccor_export.csv": (MACCOR_COMMA, "utf-8", "maccor", "Maccor"),
    "PreDiag_000229.034": (MACCOR_RAW, "cp1252", "maccor", "Maccor"),
    "biologic_fr.mpt": (BIOLOGIC_MPT, "cp1252", "biologic_mpt", "BioLogic"),
    "neware_bts.csv": (NEWARE_CSV, "utf-8", "neware_csv", "Neware"),
    "pec_Test25205.csv": (PEC_CSV, "utf-8", "pec", "PEC"),
    "novonix.csv": (NOVONIX_CSV, "cp1252", "novonix", "Novonix"),
    "batmo_bdf.csv": (BDF_CSV, "utf-8", "bdf", "Battery Data Format"),
    "full_bdf.csv": (BDF_FULL_CSV, "utf-8", "bdf", "Battery Data Format"),
}


def write_fixture(folder: Path, name: str) -> Path:
    text, encoding, _, _ = FIXTURES[name]
    path = Path(folder) / name
    path.write_bytes(text.encode(encoding))
    return path


def write_arbin_sidecar(folder: Path, data_file: Path) -> Path:
    path = Path(folder) / f"{Path(data_file).stem}_Metadata.csv"
    path.write_text(ARBIN_METADATA_CSV)
    return path


def shift_column(text: str, column: str, rows: int = 1) -> str:
    """The csv text with one column's values moved down by `rows` (the first ones repeat): a logger whose
    capacity column lags the others."""
    lines = text.splitlines()
    index = lines[0].split(",").index(column)
    cells = [line.split(",") for line in lines[1:]]
    values = [row[index] for row in cells]
    shifted = values[:rows] + values[:-rows]
    for row, value in zip(cells, shifted):
        row[index] = value
    return "\n".join([lines[0]] + [",".join(row) for row in cells]) + "\n"


# ---- a simulated cell written as an Arbin MITS csv export -----------------------------------------------------

ARBIN_HEADER = ("Data_Point,Test_Time(s),Step_Time(s),DateTime,Step_Index,Cycle_Index,Current(A),Voltage(V),"
                "Charge_Capacity(Ah),Discharge_Capacity(Ah),Charge_Energy(Wh),Discharge_Energy(Wh),dV/dt(V/s),"
                "Internal_Resistance(Ohm),Temperature (C)_1")


def write_simulated_arbin_cell(folder: Path, name: str, n_cycles: int, seed: int = 0,
                               points_per_cycle: int = 60) -> tuple[Path, Path, float]:
    """One synthetic LFP/graphite cell (assets.cycling.synthetic) with every cycle 1..n_cycles simulated, written
    as an Arbin MITS csv export (Test_Time in s over the whole test, capacities and energies counted from 0 in
    each cycle, charge step 1, discharge step 2) plus its _Metadata.csv sidecar. Returns (data file, sidecar, the
    simulated cell's cycle life: the truth a prediction can be scored against; the files do not carry it)."""
    from assets.cycling.synthetic import synthetic_batch

    record = next(iter(synthetic_batch(1, last_detail_cycle=n_cycles, detail_stride=1,
                                       points_per_cycle=points_per_cycle, seed=seed).values()))
    lines, start_s, point = [ARBIN_HEADER], 0.0, 1
    for cycle in range(1, n_cycles + 1):
        trace = record["cycles"][str(cycle)]
        seconds = start_s + 60.0 * trace["t"]
        current, voltage = trace["I"], trace["V"]
        # The simulator scales its charge capacity by the cell's faded capacity but its charge current by the
        # nominal one; an instrument counts what flowed, so the charge capacity is the current's integral.
        charged = np.where((current[1:] > 0) & (current[:-1] > 0), 0.5 * (current[1:] + current[:-1]), 0.0)
        charge_ah = np.cumsum(np.r_[0.0, charged * np.diff(seconds) / 3600.0])
        charge_energy = np.cumsum(np.r_[0.0, np.diff(charge_ah) * voltage[1:]])
        discharge_energy = np.cumsum(np.r_[0.0, np.diff(trace["Qd"]) * voltage[1:]])
        for i in range(seconds.size):
            step = 1 if current[i] > 0 else 2
            stamp = f"05/12/2017 {int(seconds[i] // 3600) % 24:02d}:{int(seconds[i] // 60) % 60:02d}:{int(seconds[i]) % 60:02d}"
            lines.append(f"{point},{seconds[i]:.4f},{60 * trace['t'][i]:.4f},{stamp},{step},{cycle},{current[i]:.6f},"
                         f"{voltage[i]:.6f},{charge_ah[i]:.7f},{trace['Qd'][i]:.7f},{charge_energy[i]:.7f},"
                         f"{discharge_energy[i]:.7f},0,0.0165,{trace['T'][i]:.3f}")
            point += 1
        start_s = seconds[-1] + 60.0
    path = Path(folder) / f"{name}.csv"
    path.write_text("\n".join(lines) + "\n")
    return path, write_arbin_sidecar(folder, path), float(record["cycle_life"])
